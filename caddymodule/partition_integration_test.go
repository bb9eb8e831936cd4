package caddymodule_test

import (
	"strings"
	"testing"

	"github.com/tokeninjector/caddy-token-injector/internal/dev/entraemu"
)

// Which callers a route takes, and which downstream tokens they may share: the partitions issue 8 asked for.

// A route that names its own client_id does not inherit the global option's audiences: one app's tokens are
// refused by the other's route, both ways, before any call to Entra.
func TestRegistrationsDoNotAcceptEachOthersTokens(t *testing.T) {
	client := startCaddy(t)
	user := freshUser(t).Key
	addinToken := ssoToken(t, user, entraemu.MintOptions{})
	otherToken := ssoToken(t, user, entraemu.MintOptions{Audience: otherAPIURI})
	if status, _, body := call(t, client, "/other-api/me", otherToken); status != 200 {
		t.Fatalf("the other API's own caller: %d %v", status, body)
	}
	before := tokenRequests()
	for _, tt := range []struct{ path, token string }{{"/other-api/me", addinToken}, {"/graph/me", otherToken}} {
		if status, _, body := call(t, client, tt.path, tt.token); status != 401 || body["error"] != "invalid_token" {
			t.Errorf("%s with the other app's token: %d %v, want 401 invalid_token", tt.path, status, body)
		}
	}
	if n := tokenRequests() - before; n != 0 {
		t.Fatalf("%d token requests for refused tokens, want 0", n)
	}
}

// A downstream token obtained with an MFA caller token is not served to a later caller token of the same user
// without MFA: that one goes to Entra, which asks for MFA. A plain user with one device still costs one call per
// scope set.
func TestStepUpIsNotReusedAcrossAuthContexts(t *testing.T) {
	client := startCaddy(t)
	user := freshUser(t).Key
	env.Emu.SetFault(user, entraemu.Fault{Kind: entraemu.FaultMFARequired})
	if status, _, body := call(t, client, "/graph/me", ssoToken(t, user, entraemu.MintOptions{MFA: true})); status != 200 {
		t.Fatalf("with MFA: %d %v", status, body)
	}
	status, _, body := call(t, client, "/graph/me", ssoToken(t, user, entraemu.MintOptions{}))
	if status != 401 || body["reason"] != "mfa_required" {
		t.Fatalf("without MFA: %d %v, want Entra's mfa_required, not the step-up token", status, body)
	}
	env.Emu.ClearFaults()

	plain := freshUser(t).Key
	device := map[string]any{"deviceid": "5b8e0000-0000-4000-8000-00000000dev1"}
	before := oboCalls()
	for range 3 {
		if status, _, body := call(t, client, "/graph/me", ssoToken(t, plain, entraemu.MintOptions{ExtraClaims: device})); status != 200 {
			t.Fatalf("plain user: %d %v", status, body)
		}
	}
	if n := oboCalls() - before; n != 1 {
		t.Fatalf("%d OBO calls for one user on one device, want 1", n)
	}
}

// caller_scopes and caller_apps restrict which proven callers a route takes: others get 403 before any call to
// Entra, and the ones allowed still get their token.
func TestCallerScopesAndApps(t *testing.T) {
	client := startCaddy(t)
	loadConfig(t, siteConfig(errorRoutes+`
	route /admin/* {
		token_injector {
			scopes https://graph.microsoft.com/User.Read
			caller_scopes Admin.All
		}
	}
	route /users/* {
		token_injector {
			scopes https://graph.microsoft.com/User.Read
			caller_scopes Admin.All access_as_user
			caller_apps `+entraemu.DefaultAddinClientID+`
		}
	}
	route /partner/* {
		token_injector {
			scopes https://graph.microsoft.com/User.Read
			caller_apps 0bd1e000-0000-4000-8000-00000000aaaa
		}
	}`))
	t.Cleanup(func() { loadConfig(t, siteConfig(errorRoutes)) })
	user := freshUser(t).Key
	before := tokenRequests()
	for _, tt := range []struct {
		path, code string
		status     int
	}{{"/admin/me", "insufficient_scope", 403}, {"/partner/me", "access_denied", 403}} {
		status, h, body := call(t, client, tt.path, ssoToken(t, user, entraemu.MintOptions{}))
		if status != tt.status || body["error"] != tt.code {
			t.Errorf("%s: %d %v, want %d %s", tt.path, status, body, tt.status, tt.code)
		}
		if tt.code == "insufficient_scope" && !strings.Contains(h.Get("WWW-Authenticate"), `error="insufficient_scope"`) {
			t.Errorf("WWW-Authenticate %q", h.Get("WWW-Authenticate"))
		}
	}
	if n := tokenRequests() - before; n != 0 {
		t.Fatalf("%d token requests for refused callers, want 0", n)
	}
	if status, _, body := call(t, client, "/users/me", ssoToken(t, user, entraemu.MintOptions{})); status != 200 {
		t.Fatalf("an allowed caller: %d %v", status, body)
	}
	// One proven token, remembered with the route that last took it, meets each route's rules on every request.
	tok := ssoToken(t, user, entraemu.MintOptions{})
	for _, path := range []string{"/users/me", "/admin/me", "/users/me", "/users/me", "/admin/me", "/admin/me", "/users/me"} {
		want := map[string]int{"/users/me": 200, "/admin/me": 403}[path]
		if status, _, body := call(t, client, path, tok); status != want {
			t.Fatalf("the same token at %s: %d %v, want %d", path, status, body, want)
		}
	}
	// A reload that narrows the route's rules refuses the token it took before.
	loadConfig(t, siteConfig(errorRoutes+`
	route /users/* {
		token_injector {
			scopes https://graph.microsoft.com/User.Read
			caller_scopes Admin.All
		}
	}`))
	if status, _, body := call(t, client, "/users/me", tok); status != 403 || body["error"] != "insufficient_scope" {
		t.Fatalf("after the reload: %d %v, want 403 insufficient_scope", status, body)
	}
}
