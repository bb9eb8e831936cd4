package caddymodule

import (
	"bytes"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
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
	}{
		{"no body", nil, 0, false, true, nil},
		{"within the bound", bytes.NewReader(small), limit, false, true, small},
		{"within the bound, unknown length", io.MultiReader(bytes.NewReader(small)), -1, false, true, small},
		{"over the bound", bytes.NewReader(large), limit + 1, false, false, large},
		{"over the bound, unknown length", io.MultiReader(bytes.NewReader(large)), -1, false, false, large},
		{"an upgrade", bytes.NewReader(small), limit, true, false, small},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/", tc.body)
			r.ContentLength = tc.length
			if tc.upgrade {
				r.Header.Set("Connection", "Upgrade")
				r.Header.Set("Upgrade", "websocket")
			}
			body, ok, err := bufferBody(r, limit)
			if err != nil || ok != tc.replayable {
				t.Fatalf("replayable %v, %v", ok, err)
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
