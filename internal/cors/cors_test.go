package cors

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func preflight(origin, method, headers string) *http.Request {
	r := httptest.NewRequest(http.MethodOptions, "https://proxy.example/api", nil)
	if origin != "" {
		r.Header.Set("Origin", origin)
	}
	if method != "" {
		r.Header.Set("Access-Control-Request-Method", method)
	}
	if headers != "" {
		r.Header.Set("Access-Control-Request-Headers", headers)
	}
	return r
}

func TestCORSPreflight(t *testing.T) {
	c, err := New([]string{"https://App.Example", "http://localhost:3000/"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		r        *http.Request
		answered bool
	}{
		{"allowed", preflight("https://app.example", "POST", "authorization, x-custom"), true},
		{"allowed with default port", preflight("https://app.example:443", "GET", ""), true},
		{"allowed localhost", preflight("http://localhost:3000", "GET", ""), true},
		{"other port", preflight("http://localhost:3001", "GET", ""), false},
		{"other scheme", preflight("http://app.example", "GET", ""), false},
		{"suffix attack", preflight("https://app.example.evil.example", "GET", ""), false},
		{"prefix attack", preflight("https://evilapp.example", "GET", ""), false},
		{"null origin", preflight("null", "GET", ""), false},
		{"no origin", preflight("", "GET", ""), false},
		{"plain OPTIONS", preflight("https://app.example", "", ""), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			got := c.Preflight(w, tt.r)
			if got != tt.answered {
				t.Fatalf("Preflight = %v, want %v", got, tt.answered)
			}
			h := w.Header()
			if !tt.answered {
				if len(h) != 0 || w.Code != http.StatusOK || w.Body.Len() != 0 {
					t.Fatalf("a refused preflight wrote %d %v", w.Code, h)
				}
				return
			}
			if w.Code != http.StatusNoContent || h.Get("Access-Control-Allow-Origin") != tt.r.Header.Get("Origin") ||
				h.Get("Access-Control-Allow-Credentials") != "true" || h.Get("Access-Control-Max-Age") == "" ||
				!strings.Contains(h.Get("Access-Control-Allow-Methods"), tt.r.Header.Get("Access-Control-Request-Method")) ||
				!strings.Contains(h.Get("Access-Control-Allow-Headers"), "Authorization") ||
				!strings.Contains(h.Get("Access-Control-Allow-Headers"), "Content-Type") ||
				!strings.Contains(strings.Join(h.Values("Vary"), ","), "Origin") {
				t.Fatalf("preflight answer = %d %v", w.Code, h)
			}
		})
	}
	w := httptest.NewRecorder()
	c.Preflight(w, preflight("https://app.example", "PUT", "x-custom, bad header, authorization"))
	if got := w.Header().Get("Access-Control-Allow-Headers"); got != "Authorization, Content-Type, x-custom" {
		t.Fatalf("Allow-Headers = %q", got)
	}
}

func TestCORSDecorate(t *testing.T) {
	c := Policy{AllowedOrigins: []string{"https://app.example"}}
	r := httptest.NewRequest(http.MethodGet, "https://proxy.example/api", nil)
	r.Header.Set("Origin", "https://app.example")
	w := httptest.NewRecorder()
	w.Header().Set("Vary", "Accept-Encoding, origin")
	c.Decorate(w, r)
	h := w.Header()
	if h.Get("Access-Control-Allow-Origin") != "https://app.example" || h.Get("Access-Control-Allow-Credentials") != "true" ||
		h.Get("Access-Control-Expose-Headers") != "WWW-Authenticate, Retry-After" {
		t.Fatalf("decorated = %v", h)
	}
	if v := h.Values("Vary"); len(v) != 1 {
		t.Fatalf("Vary repeated: %q", v)
	}
	for _, o := range []string{"https://evil.example", "null", "", "*"} {
		r.Header.Set("Origin", o)
		w := httptest.NewRecorder()
		c.Decorate(w, r)
		if len(w.Header()) != 0 {
			t.Fatalf("origin %q got %v", o, w.Header())
		}
	}
	// A "*" in the configuration never allows anything.
	star := Policy{AllowedOrigins: []string{"*", "null"}}
	for _, o := range []string{"https://any.example", "*", "null"} {
		r.Header.Set("Origin", o)
		w = httptest.NewRecorder()
		star.Decorate(w, r)
		if len(w.Header()) != 0 {
			t.Fatalf("\"*\" or \"null\" allowed the origin %q", o)
		}
	}
}

func TestNewRefusesWhatIsNotAnOrigin(t *testing.T) {
	for _, o := range []string{"*", "null", "https://app.example/app", "app.example", "javascript://x",
		"https://user@app.example", "https://app.example?x=1", "ftp://app.example"} {
		if _, err := New([]string{o}); err == nil || !strings.Contains(err.Error(), "allowed_origins") {
			t.Errorf("New(%q) = %v, want an allowed_origins error", o, err)
		}
	}
	p, err := New([]string{"HTTPS://App.Example:443/"})
	if err != nil || p.AllowedOrigins[0] != "https://app.example" {
		t.Fatalf("normalized = %v %v", p.AllowedOrigins, err)
	}
}
