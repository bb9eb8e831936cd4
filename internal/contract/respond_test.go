package contract

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/tokeninjector/caddy-token-injector/internal/entra"
	"github.com/tokeninjector/caddy-token-injector/internal/session"
)

func TestRespond(t *testing.T) {
	login := func(_ *http.Request, scopes []string, claims string) string {
		return "/.auth/login?scope=" + scopes[0] + "&claims=" + claims
	}
	mfa := entra.ParseError(400, nil, entraBody("invalid_grant", []int{50076}, "", `{"c":1}`))
	tests := []struct {
		name       string
		err        error
		signIn     bool
		navigation bool
		status     int
		location   string
		loginURL   string
	}{
		{"api call, no sign-in", session.ErrNoSession, false, false, 401, "", ""},
		{"api call with sign-in gets login_url", session.ErrNoSession, true, false, 401, "", "/.auth/login?scope=s&claims="},
		{"navigation with sign-in is redirected", session.ErrNoSession, true, true, 302, "/.auth/login?scope=s&claims=", ""},
		{"claims travel in login_url", mfa, true, false, 401, "", `/.auth/login?scope=s&claims={"c":1}`},
		{"navigation without sign-in gets the 401", session.ErrNoSession, false, true, 401, "", ""},
		{"outages are never redirected", &entra.UnavailableError{Err: errors.New("reset")}, true, true, 503, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "https://proxy.example/graph/me", nil)
			if tt.navigation {
				r.Header.Set("Sec-Fetch-Mode", "navigate")
			}
			o := Options{Scopes: []string{"s"}}
			if tt.signIn {
				o.LoginURL = login
			}
			w := httptest.NewRecorder()
			p := Respond(w, r, tt.err, o)
			if w.Code != tt.status || w.Header().Get("Location") != tt.location || p.Status != tt.status && w.Code != 302 {
				t.Fatalf("got %d Location %q", w.Code, w.Header().Get("Location"))
			}
			if w.Code == 302 {
				return
			}
			var body map[string]any
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
				t.Fatal(err)
			}
			if got, _ := body["login_url"].(string); got != tt.loginURL {
				t.Fatalf("login_url = %q, want %q", got, tt.loginURL)
			}
		})
	}
}
