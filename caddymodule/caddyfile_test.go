package caddymodule

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddytest"
	_ "github.com/caddyserver/caddy/v2/modules/standard"
)

var updateGolden = flag.Bool("update", false, "rewrite the Caddyfile→JSON golden files")

func TestUnmarshalCaddyfile(t *testing.T) {
	tests := []struct {
		name    string
		input   string
		want    Handler
		wantErr string
	}{
		{name: "scopes as arguments", input: `token_injector https://graph.microsoft.com/User.Read https://graph.microsoft.com/Mail.Read`,
			want: Handler{Scopes: []string{"https://graph.microsoft.com/User.Read", "https://graph.microsoft.com/Mail.Read"}}},
		{name: "scopes subdirective", input: "token_injector {\n scopes api://other/.default\n}",
			want: Handler{Scopes: []string{"api://other/.default"}}},
		{name: "inline registration", input: `token_injector {
			scopes https://graph.microsoft.com/User.Read
			authority_host https://login.microsoftonline.us
			tenant {env.TENANT}
			client_id 11111111-2222-3333-4444-555555555555
			client_secret {env.SECRET}
			audience api://host/11111111-2222-3333-4444-555555555555 api://alias
			cache_max_entries 5000
			timeout 3s
			refresh_before 10m
			expiry_margin 90s
			clock_skew 30s
		}`, want: Handler{Scopes: []string{"https://graph.microsoft.com/User.Read"}, Registration: &Registration{
			AuthorityHost: "https://login.microsoftonline.us", Tenant: "{env.TENANT}",
			ClientID: "11111111-2222-3333-4444-555555555555", ClientSecret: "{env.SECRET}",
			Audiences:       []string{"api://host/11111111-2222-3333-4444-555555555555", "api://alias"},
			CacheMaxEntries: 5000, Timeout: caddy.Duration(3e9), RefreshBefore: caddy.Duration(600e9),
			ExpiryMargin: caddy.Duration(90e9), ClockSkew: caddy.Duration(30e9)}}},
		{name: "unknown subdirective", input: "token_injector {\n tennant x\n}", wantErr: `unknown subdirective "tennant"`},
		{name: "scopes without values", input: "token_injector {\n scopes\n}", wantErr: "wrong argument count"},
		{name: "tenant with two values", input: "token_injector {\n tenant a b\n}", wantErr: "wrong argument count"},
		{name: "bad duration", input: "token_injector {\n timeout soon\n}", wantErr: `timeout: "soon" is not a positive duration`},
		{name: "negative duration", input: "token_injector {\n refresh_before -1m\n}", wantErr: "refresh_before"},
		{name: "bad number", input: "token_injector {\n cache_max_entries lots\n}", wantErr: `cache_max_entries: "lots" is not a positive number`},
		{name: "unknown trust pool", input: "token_injector {\n tls_trust_pool nosuch\n}", wantErr: "nosuch"},
		{name: "trust pool twice", input: "token_injector {\n tls_trust_pool file /a.pem\n tls_trust_pool file /b.pem\n}", wantErr: "given twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h Handler
			err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tt.input))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, _ := json.Marshal(h)
			want, _ := json.Marshal(tt.want)
			if string(got) != string(want) {
				t.Fatalf("got  %s\nwant %s", got, want)
			}
		})
	}
}

// TestLoadTimeErrors checks that a broken config fails when it loads, with a message naming the field.
func TestLoadTimeErrors(t *testing.T) {
	const global = "{\n\tadmin off\n\ttoken_injector {\n%s\n\t}\n}\n:0 {\n\ttoken_injector %s\n}\n"
	full := "tenant t\n client_id c\n client_secret s"
	tests := []struct {
		name, registration, route, wantErr string
	}{
		{"missing tenant", "client_id c\n client_secret s", "x/.default", "tenant: required"},
		{"missing client_id", "tenant t\n client_secret s", "x/.default", "client_id: required"},
		{"missing secret", "tenant t\n client_id c", "x/.default", "client_secret: required"},
		{"malformed authority", full + "\n authority_host login.microsoftonline.com", "x/.default", "authority_host"},
		{"http authority", full + "\n authority_host http://localhost:9000", "x/.default", "authority_host"},
		{"authority with a path", full + "\n authority_host https://login.microsoftonline.com/tenant", "x/.default", "authority_host"},
		{"multi-tenant endpoint", "tenant common\n client_id c\n client_secret s", "x/.default", "tenant: \"common\""},
		{"empty scope list", full, "", "scopes: at least one scope"},
		{"secret from an unset env var", "tenant t\n client_id c\n client_secret {env.TOKEN_INJECTOR_TEST_UNSET}", "x/.default", "client_secret: required"},
		{"scope from an unset env var", full, "{env.TOKEN_INJECTOR_TEST_UNSET}", "scopes: at least one scope"},
		{"sign-in without a cookie secret", full, "x/.default {\n sign_in {\n path /.auth\n }\n }", "sign_in: cookie_secret: required"},
		{"sign-in with a short key", full, "x/.default {\n sign_in {\n cookie_secret c2hvcnQ=\n }\n }", "cookie_secret"},
		{"sign-in with a bad same_site", full, "x/.default {\n sign_in {\n cookie_secret ZGVtby1vbmx5LWNvb2tpZS1zZWNyZXQtMzItYnl0ZXM=\n same_site sometimes\n }\n }", "same_site"},
		{"sign-in path without a slash", full, "x/.default {\n sign_in {\n cookie_secret ZGVtby1vbmx5LWNvb2tpZS1zZWNyZXQtMzItYnl0ZXM=\n path auth\n }\n }", "path"},
		{"bad allowed origin", full + "\n allowed_origins *", "x/.default", "allowed_origins"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfgJSON, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(strings.Replace(strings.Replace(global, "%s", tt.registration, 1), "%s", tt.route, 1)), nil)
			if err != nil {
				if strings.Contains(err.Error(), tt.wantErr) {
					return
				}
				t.Fatalf("adapt: %v", err)
			}
			var cfg caddy.Config
			if err := json.Unmarshal(cfgJSON, &cfg); err != nil {
				t.Fatal(err)
			}
			err = caddy.Validate(&cfg)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

// TestCaddyfileAdapt compares each testdata/adapt/*.caddyfiletest (a Caddyfile, a line of dashes, the JSON) with
// what the adapter makes. Run with -update to rewrite the JSON after a deliberate change, then review the diff.
func TestCaddyfileAdapt(t *testing.T) {
	files, _ := filepath.Glob("testdata/adapt/*.caddyfiletest")
	if len(files) == 0 {
		t.Fatal("no golden files")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			in, want, _ := strings.Cut(string(data), "----------")
			in = strings.TrimSpace(in) + "\n"
			if *updateGolden {
				out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(in), nil)
				if err != nil {
					t.Fatal(err)
				}
				pretty, _ := json.MarshalIndent(json.RawMessage(out), "", "\t")
				if err := os.WriteFile(f, []byte(in+"----------\n"+string(pretty)+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if !caddytest.CompareAdapt(t, f, in, "caddyfile", strings.TrimSpace(want)) {
				t.Fail()
			}
		})
	}
}
