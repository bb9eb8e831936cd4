package signin

import (
	"net/http"
	"strings"
	"testing"

	"github.com/tokeninjector/caddy-token-injector/internal/session"
)

func TestPreLoginCookieNames(t *testing.T) {
	tests := []struct {
		target, prefix string
		secure         bool
	}{
		{"https://proxy.example/.auth/login", "__Host-token_injector_login_", true},
		{"http://localhost:8080/.auth/login", "token_injector_login_", false},
	}
	for _, tt := range tests {
		e := newEnv(t, Config{}, session.Config{})
		w := newBrowser(t, e.h).get(tt.target)
		cs := (&http.Response{Header: w.Header()}).Cookies()
		if len(cs) != 1 {
			t.Fatalf("%s: cookies %q", tt.target, w.Header().Values("Set-Cookie"))
		}
		c := cs[0]
		// __Host- wants Secure, Path=/ and no Domain, or browsers drop the cookie.
		if !strings.HasPrefix(c.Name, tt.prefix) || c.Secure != tt.secure || c.Path != "/" || c.Domain != "" {
			t.Errorf("%s: pre-login cookie %s", tt.target, w.Header().Get("Set-Cookie"))
		}
	}
}

// TestSiblingPlantedPreLoginRefused is login CSRF through a sibling subdomain: the attacker starts a sign-in of
// their own, then plants its pre-login cookie with Domain=.proxy.example (which a __Secure- name allows) in the
// victim's browser and sends the victim to the callback with the attacker's state and code.
func TestSiblingPlantedPreLoginRefused(t *testing.T) {
	e := newEnv(t, Config{}, session.Config{})
	attacker := newBrowser(t, e.h)
	state := e.login(t, attacker, "")
	victim := newBrowser(t, e.h)
	for name, v := range attacker.cookies {
		planted := "__Secure-" + strings.TrimPrefix(strings.TrimPrefix(name, "__Host-"), "__Secure-")
		victim.cookies[planted] = v
		victim.order = append(victim.order, planted)
	}
	w := victim.callback(state, "attacker-code")
	if w.Code != http.StatusBadRequest || victim.hasSession(e.sessions) || e.idp.redeemCount() != 0 {
		t.Fatalf("a planted pre-login cookie signed the victim in: %d", w.Code)
	}
}

// TestLegacyPreLoginCookiesExpired: __Secure- pre-login cookies of an earlier version (Path={Path}) are expired.
func TestLegacyPreLoginCookiesExpired(t *testing.T) {
	e := newEnv(t, Config{}, session.Config{})
	b := newBrowser(t, e.h)
	b.cookies["__Secure-token_injector_login_old"] = "x"
	b.order = append(b.order, "__Secure-token_injector_login_old")
	w := b.get("/.auth/login")
	found := false
	for _, c := range (&http.Response{Header: w.Header()}).Cookies() {
		if c.Name == "__Secure-token_injector_login_old" {
			found = c.MaxAge < 0 && c.Path == "/.auth" && c.Secure
		}
	}
	if !found {
		t.Fatalf("legacy cookie not expired: %q", w.Header().Values("Set-Cookie"))
	}
}
