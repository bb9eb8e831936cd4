package caddymodule

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/tokeninjector/caddy-token-injector/internal/session"
	"github.com/tokeninjector/caddy-token-injector/internal/tokencache"
)

// Keys of the run's own: published keys sign sessions only for the built-in emulator.
var (
	reloadCookieSecret = randomCookieSecret()
	otherCookieSecret  = randomCookieSecret()
)

func randomCookieSecret() string {
	k := make([]byte, 32)
	_, _ = rand.Read(k)
	return base64.StdEncoding.EncodeToString(k)
}

// provisionHandler provisions a handler of registration reg (JSON, without the tenant) in a new Caddy context, as
// a config load does, and cleans it up at the end of the test.
func provisionHandler(t *testing.T, tenant, reg string) *Handler {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: t.Context()})
	t.Cleanup(cancel)
	h, err := provisionIn(t, ctx, tenant, reg)
	if err != nil {
		t.Fatalf("provision %s: %v", reg, err)
	}
	return h
}

// TestReloadKeepsState is a reload that changes one setting that is not the registration's
// identity: the new config's handler gets the old state, with every cached token and session (what of the
// setting reaches the state is update's business; see TestReloadApplies*).
func TestReloadKeepsState(t *testing.T) {
	before := `"client_secret":"s1","cache_max_entries":1000,"sign_in":{"cookie_secrets":["` + reloadCookieSecret + `"]}`
	tests := []struct {
		name, after string
		wantLen     int
	}{
		{"timeout", `"client_secret":"s1","timeout":"3s"`, 100},
		{"refresh_before", `"client_secret":"s1","refresh_before":"1m"`, 100},
		{"expiry_margin", `"client_secret":"s1","expiry_margin":"5m"`, 100},
		{"clock_skew", `"client_secret":"s1","clock_skew":"10s"`, 100},
		{"cache_max_entries grows", `"client_secret":"s1","cache_max_entries":5000`, 100},
		{"cache_max_entries shrinks", `"client_secret":"s1","cache_max_entries":"{env.TI_TEST_MAX}"`, 40},
		{"client secret rotated", `"client_secret":"s2"`, 100},
		{"cookie secret rotated", `"client_secret":"s1","sign_in":{"cookie_secrets":["` + otherCookieSecret + `","` +
			reloadCookieSecret + `"]}`, 100},
		{"sign-in lifetimes", `"client_secret":"s1","sign_in":{"cookie_secrets":["` + reloadCookieSecret +
			`"],"idle_timeout":"1h","absolute_timeout":"{env.TI_TEST_ABSOLUTE}"}`, 100},
	}
	t.Setenv("TI_TEST_MAX", "40")
	t.Setenv("TI_TEST_ABSOLUTE", "24h")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tenant := "reload-" + strings.NewReplacer(" ", "-", "_", "-").Replace(tt.name)
			old := provisionHandler(t, tenant, before)
			ctx := t.Context()
			exp := time.Now().Add(time.Hour)
			for i := range 100 {
				k := tokencache.Key{User: tokencache.UserKey(fmt.Sprint(i), tenant), Scopes: old.scopeKey}
				_ = old.state.cache.Set(ctx, k, tokencache.Token{AccessToken: fmt.Sprint("t", i), ExpiresOn: exp})
			}
			if err := old.state.sessions.Put(ctx, session.Session{ID: "sid", UserKey: "99." + tenant}, time.Hour); err != nil {
				t.Fatal(err)
			}

			reloaded := provisionHandler(t, tenant, tt.after)
			_ = old.Cleanup() // the old config stops after the new one started
			if reloaded.state != old.state {
				t.Fatal("the reload built new state: every cached token and session was lost")
			}
			if n := reloaded.state.cache.Len(); n != tt.wantLen {
				t.Fatalf("%d tokens cached after the reload, want %d", n, tt.wantLen)
			}
			last := tokencache.Key{User: tokencache.UserKey("99", tenant), Scopes: reloaded.scopeKey}
			if tok, ok, _ := reloaded.state.cache.Get(ctx, last); !ok || tok.AccessToken != "t99" {
				t.Fatal("the most recently cached token is gone")
			}
			if _, ok, _ := reloaded.state.sessions.Get(ctx, "sid"); !ok {
				t.Fatal("the session is gone")
			}
		})
	}
}

// TestReloadAppliesExpiryMargin checks that the new expiry_margin reaches the surviving cache.
func TestReloadAppliesExpiryMargin(t *testing.T) {
	provisionHandler(t, "reload-margin", `"client_secret":"s"`)
	h := provisionHandler(t, "reload-margin", `"client_secret":"s","expiry_margin":"30m"`)
	k := tokencache.Key{User: "u.reload-margin", Scopes: h.scopeKey}
	_ = h.state.cache.Set(t.Context(), k, tokencache.Token{AccessToken: "t", ExpiresOn: time.Now().Add(20 * time.Minute)})
	if _, ok, _ := h.state.cache.Get(t.Context(), k); ok {
		t.Fatal("a token within the reloaded expiry_margin of 30m was cached")
	}
}

// TestReloadWithAnotherIdentityBuildsNewState: another tenant or app is another registration.
func TestReloadWithAnotherIdentityBuildsNewState(t *testing.T) {
	a := provisionHandler(t, "reload-identity-a", `"client_secret":"s"`)
	b := provisionHandler(t, "reload-identity-b", `"client_secret":"s"`)
	if a.state == b.state {
		t.Fatal("two tenants share one state")
	}
}
