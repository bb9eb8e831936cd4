package caddymodule

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/tokeninjector/caddy-token-injector/internal/session"
)

// Two routes of one config load that share a registration must agree on its settings; their own settings (scopes,
// timeout, expiry margin) may differ.
func TestRoutesOfOneRegistrationAgree(t *testing.T) {
	tests := []struct {
		name, first, second string
		wantErr             string
	}{
		{"same settings", `"client_secret":"s"`, `"client_secret":"s"`, ""},
		{"route timeout and margin", `"client_secret":"s"`, `"client_secret":"s","timeout":"300ms","expiry_margin":"59m"`, ""},
		{"another secret", `"client_secret":"s"`, `"client_secret":"other"`, "client_secret"},
		{"another audience", `"client_secret":"s","audiences":["api://a"]`, `"client_secret":"s","audiences":["api://b"]`, "audience"},
		{"another clock skew", `"client_secret":"s"`, `"client_secret":"s","clock_skew":"5s"`, "clock_skew"},
		{"another cache bound", `"client_secret":"s"`, `"client_secret":"s","cache_max_entries":10`, "cache_max_entries"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := caddy.NewContext(caddy.Context{Context: t.Context()})
			t.Cleanup(cancel)
			tenant := fmt.Sprintf("agree-%d", i)
			if _, err := provisionIn(t, ctx, tenant, tt.first); err != nil {
				t.Fatal(err)
			}
			_, err := provisionIn(t, ctx, tenant, tt.second)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr+":")) {
				t.Fatalf("second route: %v, want error naming %q", err, tt.wantErr)
			}
		})
	}
}

// provisionIn provisions a handler of registration reg (JSON, without the tenant) in ctx, as a config load does,
// and cleans it up at the end of the test.
func provisionIn(t *testing.T, ctx caddy.Context, tenant, reg string) (*Handler, error) {
	t.Helper()
	cfg := fmt.Sprintf(`{"scopes":["https://graph.microsoft.com/User.Read"],"registration":{"tenant":%q,"client_id":"c",%s}}`,
		tenant, reg)
	h := new(Handler)
	if err := json.Unmarshal([]byte(cfg), h); err != nil {
		t.Fatal(err)
	}
	err := h.Provision(ctx)
	t.Cleanup(func() { _ = h.Cleanup() })
	return h, err
}

// Every spelling of a published key decodes to the same bytes, and those are refused; a fresh key is not.
func TestPublishedKeysInEverySpelling(t *testing.T) {
	for _, raw := range publishedCookieKeys {
		for _, spelled := range []string{base64.StdEncoding.EncodeToString([]byte(raw)),
			base64.RawStdEncoding.EncodeToString([]byte(raw)), base64.URLEncoding.EncodeToString([]byte(raw)),
			base64.RawURLEncoding.EncodeToString([]byte(raw))} {
			keys, err := session.ParseKeys([]string{spelled})
			if err != nil || !isPublishedKey(keys[0]) {
				t.Errorf("%s: published = false (%v)", spelled, err)
			}
		}
	}
	fresh := make([]byte, 32)
	_, _ = rand.Read(fresh)
	if isPublishedKey(fresh) {
		t.Fatal("a random key counted as published")
	}
}

// A route with sign_in cannot restrict callers by caller_scopes or caller_apps: its signed-in callers have no
// token to restrict, so it would take every one of them.
func TestCallerRulesWithSignInAreRefused(t *testing.T) {
	signIn := `"sign_in":{"cookie_secrets":["` + reloadCookieSecret + `"]}`
	for i, rule := range []string{`"caller_apps":["11111111-1111-4111-8111-111111111111"]`, `"caller_scopes":["access_as_user"]`} {
		ctx, cancel := caddy.NewContext(caddy.Context{Context: t.Context()})
		t.Cleanup(cancel)
		_, err := provisionIn(t, ctx, fmt.Sprintf("rules-%d", i), `"client_secret":"s",`+rule+`,`+signIn)
		if err == nil || !strings.Contains(err.Error(), "give the sign-in its own route") {
			t.Errorf("%s with sign_in: %v", rule, err)
		}
		if _, err := provisionIn(t, ctx, fmt.Sprintf("rules-alone-%d", i), `"client_secret":"s",`+rule); err != nil {
			t.Errorf("%s alone: %v", rule, err)
		}
	}
}
