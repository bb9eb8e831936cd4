package caddymodule_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/tokeninjector/caddy-token-injector/internal/dev/entraemu"
)

// A multi-tenant registration (tenant organizations) in front of the emulator's three tenants: Contoso (the
// app's home), Fabrikam (a customer that consented) and Northwind, which allowed_tenants leaves out.

const (
	northwindTenantID = "0e0e0e0e-4444-4000-8000-00000000a0a0"
	northwindDomain   = "northwind.onmicrosoft.com"
)

var tenantsEnv struct {
	once            sync.Once
	fabrikam, north *entraemu.Emulator
	err             error
}

func startMultiTenant(t *testing.T) {
	t.Helper()
	tenantsEnv.once.Do(func() {
		if tenantsEnv.fabrikam, tenantsEnv.err = env.Emu.AddTenant(entraemu.SecondTenantConfig()); tenantsEnv.err != nil {
			return
		}
		cfg := entraemu.SecondTenantConfig()
		cfg.TenantID, cfg.TenantDomain, cfg.TenantName = northwindTenantID, northwindDomain, "Northwind"
		for i := range cfg.Users {
			cfg.Users[i].ObjectID = fmt.Sprintf("0e0e0e0e-0000-4000-8000-%012d", i+1)
			cfg.Users[i].UPN = strings.Replace(cfg.Users[i].UPN, entraemu.SecondTenantDomain, northwindDomain, 1)
		}
		tenantsEnv.north, tenantsEnv.err = env.Emu.AddTenant(cfg)
	})
	if tenantsEnv.err != nil {
		t.Fatal(tenantsEnv.err)
	}
	allowed := "allowed_tenants " + entraemu.DefaultTenantID + " " + entraemu.SecondTenantID
	loadConfig(t, globalOptions("organizations", allowed)+fmt.Sprintf(`
%s {
	log {
		output file %s
	}
	token_injector /api/* api://downstream/Data.Read
	token_injector /daemon/* {
		scopes api://downstream/.default
		app_only
	}
	reverse_proxy %s
}
`, siteBase, env.accessPath, env.Upstream.Addr))
}

// tenantSSOToken mints a caller token in tenant emu, remembered for the log check.
func tenantSSOToken(t *testing.T, emu *entraemu.Emulator, user string) string {
	t.Helper()
	tok, err := emu.MintAccessToken(user, entraemu.MintOptions{})
	if err != nil {
		t.Fatal(err)
	}
	env.mu.Lock()
	env.minted = append(env.minted, tok)
	env.mu.Unlock()
	return tok
}

func tokenRequestsOf(emus ...*entraemu.Emulator) (n int) {
	for _, e := range emus {
		n += e.Counters().TokenRequests
	}
	return n
}

func TestMultiTenantCallersGetTheirOwnTenantsTokens(t *testing.T) {
	startMultiTenant(t)
	client := env.client
	contoso, fabrikam := env.Emu, tenantsEnv.fabrikam
	fabBefore, contosoBefore := fabrikam.Counters().ByGrant[entraemu.GrantOBO], contoso.Counters().ByGrant[entraemu.GrantOBO]
	for _, tc := range []struct {
		emu       *entraemu.Emulator
		user, tid string
		version   int
	}{
		{contoso, freshUser(t).Key, entraemu.DefaultTenantID, 1},
		{fabrikam, "ava", entraemu.SecondTenantID, 1},
		{fabrikam, "ben", entraemu.SecondTenantID, 2}, // a v2 caller token: the v2 issuer form
	} {
		tok, err := tc.emu.MintAccessToken(tc.user, entraemu.MintOptions{Version: tc.version})
		if err != nil {
			t.Fatal(err)
		}
		env.mu.Lock()
		env.minted = append(env.minted, tok)
		env.mu.Unlock()
		status, _, body := call(t, client, "/api/me", tok)
		if status != 200 || body["tid"] != tc.tid || body["aud"] != entraemu.DefaultDownstreamAppID {
			t.Fatalf("%s of %s: %d %v", tc.user, tc.tid, status, body)
		}
		// The app's own token, for a caller of this tenant, is this tenant's too.
		if status, _, body = call(t, client, "/daemon/items", tok); status != 200 || body["tid"] != tc.tid || body["roles"] == nil {
			t.Fatalf("app-only for %s: %d %v", tc.tid, status, body)
		}
	}
	if n := fabrikam.Counters().ByGrant[entraemu.GrantOBO] - fabBefore; n != 2 {
		t.Fatalf("%d OBO requests in Fabrikam for its two users, want 2", n)
	}
	if n := contoso.Counters().ByGrant[entraemu.GrantOBO] - contosoBefore; n != 1 {
		t.Fatalf("%d OBO requests in Contoso for its one user, want 1", n)
	}
}

func TestMultiTenantCallerOfAnotherTenantIsRefusedWithoutCallingEntra(t *testing.T) {
	startMultiTenant(t)
	// Warm the keys first: what counts is that no token request is made for the stranger.
	call(t, env.client, "/api/me", tenantSSOToken(t, tenantsEnv.fabrikam, "chloe"))
	all := []*entraemu.Emulator{env.Emu, tenantsEnv.fabrikam, tenantsEnv.north}
	before := tokenRequestsOf(all...)
	stranger := tenantSSOToken(t, tenantsEnv.north, "ava")
	for _, path := range []string{"/api/me", "/daemon/items"} {
		status, hdr, body := call(t, env.client, path, stranger)
		desc, _ := body["error_description"].(string)
		if status != 401 || body["error"] != "invalid_token" || !strings.Contains(desc, northwindTenantID) ||
			!strings.Contains(hdr.Get("WWW-Authenticate"), "invalid_token") {
			t.Fatalf("%s: a caller of a tenant not allowed: %d %v", path, status, body)
		}
	}
	if n := tokenRequestsOf(all...) - before; n != 0 {
		t.Fatalf("%d token requests for a caller of a tenant not allowed, want 0", n)
	}
}
