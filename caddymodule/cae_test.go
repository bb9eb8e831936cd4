package caddymodule

import (
	"bytes"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

var testChallenge = `Bearer error="insufficient_claims", claims="` +
	base64.StdEncoding.EncodeToString([]byte(`{"access_token":{"nbf":{"essential":true,"value":"1"}}}`)) + `"`

func TestChallengeCatcher(t *testing.T) {
	for _, tc := range []struct {
		name              string
		before            int // headers set before the upstream answers
		status            int
		challenge         bool
		observeOnly       bool
		wantSwallowed     bool
		wantClientGetBody bool
	}{
		{"a 200 passes", 1, 200, false, false, false, true},
		{"a plain 401 passes", 1, 401, false, false, false, true},
		{"a challenge is caught", 2, 401, true, false, true, false},
		{"a challenge is caught, many headers before", 9, 401, true, false, true, false},
		{"a challenge is only noted for a request that cannot be replayed", 2, 401, true, true, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			for i := range tc.before {
				rec.Header().Set("X-Before-"+string(rune('a'+i)), "v")
			}
			c := newChallengeCatcher(rec)
			c.observeOnly = tc.observeOnly
			c.Header().Add("X-Before-a", "upstream") // the upstream's headers join the response's
			c.Header().Set("X-Upstream", "1")
			if tc.challenge {
				c.Header().Set("WWW-Authenticate", testChallenge)
			}
			c.WriteHeader(tc.status)
			c.Flush()
			_, _ = io.Copy(c, strings.NewReader("body"))
			if (c.claims != "") != tc.challenge || c.swallowed != tc.wantSwallowed || (rec.Body.String() == "body") != tc.wantClientGetBody {
				t.Fatalf("claims %q, swallowed %v, client got %q", c.claims, c.swallowed, rec.Body.String())
			}
			if tc.wantSwallowed {
				if len(rec.Header()) != tc.before || len(rec.Header()["X-Before-A"]) != 1 || rec.Flushed {
					t.Fatalf("headers not restored, or flushed: %v", rec.Header())
				}
			} else if rec.Code != tc.status || rec.Header().Get("X-Upstream") != "1" {
				t.Fatalf("passed %d %v", rec.Code, rec.Header())
			}
		})
	}
}

// TestUpgradesAreNotReplayed: a request that becomes another protocol goes upstream once, unbuffered; one that
// only says "Connection: upgrade" names no protocol and is replayable, as reverse_proxy forwards it as any other.
func TestUpgradesAreNotReplayed(t *testing.T) {
	for _, tc := range []struct {
		name    string
		method  string
		headers map[string]string
		upgrade bool
	}{
		{"a WebSocket", http.MethodGet, map[string]string{"Connection": "Upgrade", "Upgrade": "websocket"}, true},
		{"an Upgrade header alone", http.MethodGet, map[string]string{"Upgrade": "h2c"}, true},
		{"extended CONNECT", http.MethodConnect, nil, true},
		{"Connection: upgrade alone", http.MethodPost, map[string]string{"Connection": "upgrade"}, false},
		{"an empty Upgrade header", http.MethodPost, map[string]string{"Upgrade": ""}, false},
		{"an ordinary request", http.MethodPost, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, "/", strings.NewReader("body"))
			for k, v := range tc.headers {
				r.Header.Set(k, v)
			}
			if _, replayable, err := bufferBody(r, 16); err != nil || replayable == tc.upgrade {
				t.Errorf("replayable = %v, %v; an upgrade: %v", replayable, err, tc.upgrade)
			}
		})
	}
}

func TestBufferBody(t *testing.T) {
	const limit = 16
	small, large := bytes.Repeat([]byte("s"), limit), bytes.Repeat([]byte("L"), limit+1)
	for _, tc := range []struct {
		name       string
		body       io.Reader
		length     int64
		upgrade    bool
		replayable bool
		want       []byte
		idle       bool // the body is Caddy's IdleTimeoutReader around it (its Read would panic here: no Ctrl)
	}{
		{"no body", nil, 0, false, true, nil, false},
		{"no body, in Caddy's idle-timeout reader: not read", nil, 0, false, true, nil, true},
		{"a body put in place without a length: read", bytes.NewReader(small), 0, false, true, small, false},
		{"within the bound", bytes.NewReader(small), limit, false, true, small, false},
		{"within the bound, unknown length", io.MultiReader(bytes.NewReader(small)), -1, false, true, small, false},
		{"over the bound", bytes.NewReader(large), limit + 1, false, false, large, false},
		{"over the bound, unknown length", io.MultiReader(bytes.NewReader(large)), -1, false, false, large, false},
		{"an upgrade", bytes.NewReader(small), limit, true, false, small, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/", tc.body)
			r.ContentLength = tc.length
			if tc.idle {
				r.Body = &caddyhttp.IdleTimeoutReader{ReadCloser: http.NoBody}
			}
			if tc.upgrade {
				r.Header.Set("Connection", "Upgrade")
				r.Header.Set("Upgrade", "websocket")
			}
			body, ok, err := bufferBody(r, limit)
			if err != nil || ok != tc.replayable {
				t.Fatalf("replayable %v, %v", ok, err)
			}
			if tc.idle { // had bufferBody read it, the nil Ctrl would have panicked
				if _, kept := r.Body.(*caddyhttp.IdleTimeoutReader); !kept {
					t.Fatalf("the empty body was replaced by %T", r.Body)
				}
				return
			}
			for range 2 { // what the upstream reads, on the first attempt and, when replayable, the retry
				got, _ := io.ReadAll(r.Body)
				if !bytes.Equal(got, tc.want) {
					t.Fatalf("the upstream got %q, want %q", got, tc.want)
				}
				if !ok {
					break
				}
				body.rewind(r)
			}
		})
	}
}
