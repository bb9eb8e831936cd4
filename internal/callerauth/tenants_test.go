package callerauth

import (
	"context"
	"crypto/tls"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tokeninjector/caddy-token-injector/internal/dev/entraemu"
)

// A multi-tenant validator against the emulator's two tenants, over HTTPS: Entra's templated discovery documents
// under /organizations, and tokens of each tenant in the v1 and v2 forms.
func TestMultiTenantValidatesEachTenantsIssuer(t *testing.T) {
	emu, err := entraemu.New(entraemu.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	fab, err := emu.AddTenant(entraemu.SecondTenantConfig())
	if err != nil {
		t.Fatal(err)
	}
	srv, err := emu.Start(entraemu.ListenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: srv.CA.Pool()}}, Timeout: 10 * time.Second}
	cfg := Config{AuthorityHost: srv.URL, Tenant: "organizations", HTTPClient: hc,
		Audiences:      []string{entraemu.DefaultAddinClientID, entraemu.DefaultAddinIdentifierURI},
		AllowedTenants: []string{strings.ToUpper(entraemu.DefaultTenantID)}}
	v, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	mint := func(e *entraemu.Emulator, user string, o entraemu.MintOptions) string {
		tok, err := e.MintAccessToken(user, o)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	ctx := context.Background()
	for _, version := range []int{1, 2} {
		id, err := v.Validate(ctx, mint(emu, "adele", entraemu.MintOptions{Version: version}), nil)
		if err != nil || id.TenantID != entraemu.DefaultTenantID {
			t.Fatalf("v%d token of an allowed tenant: %v", version, err)
		}
	}
	fabrikam := mint(fab, "ava", entraemu.MintOptions{})
	wantInvalid := func(what, tok, desc string) {
		t.Helper()
		_, err := v.Validate(ctx, tok, nil)
		bad, ok := err.(*InvalidTokenError)
		if !ok || !strings.Contains(bad.Description, desc) {
			t.Fatalf("%s: %v, want invalid_token %q", what, err, desc)
		}
	}
	wantInvalid("a tenant not allowed", fabrikam, "not this tenant")
	// The issuer must be the token's own tenant's, in either form.
	wantInvalid("another tenant's v1 issuer", mint(emu, "adele", entraemu.MintOptions{Version: 1,
		ExtraClaims: map[string]any{"iss": "https://sts.windows.net/" + entraemu.SecondTenantID + "/"}}), "issuer")
	wantInvalid("another tenant's v2 issuer", mint(emu, "adele", entraemu.MintOptions{Version: 2,
		ExtraClaims: map[string]any{"iss": srv.URL + "/" + entraemu.SecondTenantID + "/v2.0"}}), "issuer")
	wantInvalid("the template itself", mint(emu, "adele", entraemu.MintOptions{Version: 2,
		ExtraClaims: map[string]any{"tid": "{tenantid}", "iss": srv.URL + "/{tenantid}/v2.0"}}), "not this tenant")

	// * takes any tenant; a reload that narrows the list again drops proven callers of the other tenant.
	cfg.AllowedTenants = []string{"*"}
	if err := v.Update(cfg); err != nil {
		t.Fatal(err)
	}
	if id, err := v.Validate(ctx, fabrikam, nil); err != nil || id.TenantID != entraemu.SecondTenantID {
		t.Fatalf("allowed_tenants *: %v", err)
	}
	cfg.AllowedTenants = []string{entraemu.DefaultTenantID}
	if err := v.Update(cfg); err != nil {
		t.Fatal(err)
	}
	wantInvalid("a proven caller of a tenant no longer allowed", fabrikam, "not this tenant")
}

func TestAllowedTenantsRules(t *testing.T) {
	for _, tc := range []struct {
		tenant  string
		allowed []string
		wantErr string
	}{
		{"organizations", nil, "AllowedTenants must name"},
		{"common", []string{"contoso.com"}, "not a tenant id"},
		{entraemu.DefaultTenantID, []string{"*"}, "only for a multi-tenant Tenant"},
		{"organizations", []string{"*"}, ""},
		{"contoso.onmicrosoft.com", nil, ""},
	} {
		_, err := newTenantSet(tc.tenant, tc.allowed)
		if (err == nil) != (tc.wantErr == "") || err != nil && !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("%s %v: %v, want %q", tc.tenant, tc.allowed, err, tc.wantErr)
		}
	}
}

// TakesTenant, which sign-in sessions are checked with, takes what Validate takes of tokens' tenants.
func TestTakesTenant(t *testing.T) {
	const contoso, fabrikam = "11111111-2222-4333-8444-555555555555", "66666666-7777-4888-8999-aaaaaaaaaaaa"
	for _, tc := range []struct {
		tenant  string
		allowed []string
		takes   map[string]bool
	}{
		{"contoso.onmicrosoft.com", nil, map[string]bool{contoso: true, fabrikam: true}}, // its authority decides
		{"organizations", []string{contoso}, map[string]bool{contoso: true, strings.ToUpper(contoso): true, fabrikam: false, "": false}},
		{"common", []string{"*"}, map[string]bool{contoso: true, fabrikam: true, "not-a-guid": false}},
	} {
		v, err := New(Config{AuthorityHost: "https://login.microsoftonline.com", Tenant: tc.tenant, Audiences: []string{"api"},
			AllowedTenants: tc.allowed, HTTPClient: http.DefaultClient})
		if err != nil {
			t.Fatal(err)
		}
		for tid, want := range tc.takes {
			if got := v.TakesTenant(tid); got != want {
				t.Errorf("%s %v: TakesTenant(%q) = %v, want %v", tc.tenant, tc.allowed, tid, got, want)
			}
		}
		v.Close()
	}
}
