package caddymodule

import (
	"encoding/json"
	"flag"
	"fmt"
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
			CacheMaxEntries: "5000", Timeout: "3s", RefreshBefore: "10m", ExpiryMargin: "90s", ClockSkew: "30s"}}},
		{name: "placeholders stay", input: `token_injector {env.SCOPE} {
			cache_max_entries {env.N}
			timeout {env.T}
			clock_skew {env.SKEW}s
			sign_in {
				cookie_secret {env.COOKIE}
				idle_timeout {env.IDLE}
				path {env.AUTH_PATH}
			}
		}`, want: Handler{Scopes: []string{"{env.SCOPE}"}, Registration: &Registration{CacheMaxEntries: "{env.N}",
			Timeout: "{env.T}", ClockSkew: "{env.SKEW}s",
			SignIn: &SignIn{CookieSecrets: []string{"{env.COOKIE}"}, IdleTimeout: "{env.IDLE}", Path: "{env.AUTH_PATH}"}}}},
		{name: "scopes of every valid form", input: "token_injector https://graph.microsoft.com/.default api://x/.default " +
			"api://downstream/Data.Read 00000003-0000-0000-c000-000000000000/User.Read openid profile offline_access email",
			want: Handler{Scopes: []string{"https://graph.microsoft.com/.default", "api://x/.default", "api://downstream/Data.Read",
				"00000003-0000-0000-c000-000000000000/User.Read", "openid", "profile", "offline_access", "email"}}},
		{name: "unknown subdirective", input: "token_injector {\n tennant x\n}", wantErr: `unknown subdirective "tennant"`},
		{name: "scopes without values", input: "token_injector {\n scopes\n}", wantErr: "wrong argument count"},
		{name: "tenant with two values", input: "token_injector {\n tenant a b\n}", wantErr: "wrong argument count"},
		{name: "bad duration", input: "token_injector {\n timeout soon\n}", wantErr: `timeout: "soon" is not a duration, at Testfile:2`},
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

// errorCase is a Caddyfile with a global token_injector option (registration) and one route (the token_injector
// directive's arguments and block).
const (
	errorCaseTemplate = "{\n\tadmin off\n\ttoken_injector {\n%s\n\t}\n}\n:0 {\n\ttoken_injector %s\n}\n"
	fullRegistration  = "tenant t\n client_id c\n client_secret s"
	cookieSecret      = "ZGVtby1vbmx5LWNvb2tpZS1zZWNyZXQtMzItYnl0ZXM="
)

func errorCase(registration, route string) []byte {
	return []byte(strings.Replace(strings.Replace(errorCaseTemplate, "%s", registration, 1), "%s", route, 1))
}

// TestAdaptTimeErrors checks that a value without placeholders is checked when the Caddyfile is adapted, with an
// error naming the field and carrying the file and line.
func TestAdaptTimeErrors(t *testing.T) {
	// Line 4 is the registration's first line. With fullRegistration (3 lines), the route's directive is line 10.
	const route = "api://x/.default"
	tests := []struct {
		name, registration, route, wantErr string
		line                               int
	}{
		{"bad duration", fullRegistration + "\n timeout soon", route, `timeout: "soon" is not a duration`, 7},
		{"negative duration", "refresh_before -1m", route, `refresh_before: "-1m" is not a positive duration`, 4},
		{"zero duration", "clock_skew 0", route, `clock_skew: "0" is not a positive duration`, 4},
		{"duration without a unit", "expiry_margin 60", route, `expiry_margin: "60" is not a duration`, 4},
		{"bad number", "cache_max_entries lots", route, `cache_max_entries: "lots" is not a positive number`, 4},
		{"zero number", "tenant t\n cache_max_entries 0", route, `cache_max_entries: "0" is not a positive number`, 5},
		{"bad size", "caller_cache_max_bytes big", route, `caller_cache_max_bytes: "big" is not a positive size`, 4},
		{"http authority", "authority_host http://localhost:9000", route, "authority_host: \"http://localhost:9000\" is not an https URL", 4},
		{"authority with a path", "authority_host https://login.microsoftonline.com/tenant", route, "authority_host", 4},
		{"malformed authority", "authority_host login.microsoftonline.com", route, "authority_host", 4},
		{"personal accounts endpoint", "tenant Consumers", route, `tenant: "Consumers" is personal Microsoft accounts only`, 4},
		{"allowed tenant not a tenant id", "tenant organizations\n allowed_tenants contoso.com", route, `allowed_tenants: "contoso.com" is not a tenant ID (a GUID) or *`, 5},
		{"bad capability", "client_capabilities cp1 \"cp 2\"", route, `client_capabilities: "cp 2" is not a capability`, 4},
		{"argument to app_only", fullRegistration, route + " {\n app_only yes\n }", "wrong argument count", 11},
		{"bad retry body limit", fullRegistration, route + " {\n retry_body_limit 1MB\n }", `retry_body_limit: "1MB" is not a positive number`, 11},
		{"tenant with a path", "tenant contoso.com/x", route, `tenant: "contoso.com/x" is not a tenant ID or domain`, 4},
		{"tenant with an underscore", "tenant contoso_x", route, `tenant: "contoso_x" is not a tenant ID or domain`, 4},
		{"bad allowed origin", "allowed_origins https://ok.example *", route, "allowed_origins", 4},
		{"bad same_site", fullRegistration, route + " {\n sign_in {\n same_site sometimes\n }\n }", "sign_in: same_site", 12},
		{"sign-in path without a slash", fullRegistration, route + " {\n sign_in {\n cookie_secret " + cookieSecret +
			"\n path auth\n }\n }", `sign_in: path: "auth" must be an absolute path`, 13},
		{"bad idle timeout", fullRegistration, route + " {\n sign_in {\n idle_timeout never\n }\n }", `idle_timeout: "never" is not a duration`, 12},
		{"scope without a resource", fullRegistration, "User.Read", `scopes: "User.Read" names no resource; write the full form, such as https://graph.microsoft.com/User.Read`, 10},
		{"scope without a resource in scopes", fullRegistration, "{\n scopes https://graph.microsoft.com/User.Read Mail.Read\n }", `scopes: "Mail.Read" names no resource`, 11},
		{"resource without a permission", fullRegistration, "https://graph.microsoft.com", `scopes: "https://graph.microsoft.com" is not <resource>/<permission>`, 10},
		{"inline registration", fullRegistration, route + " {\n timeout {env.T}\n expiry_margin soon\n }", `expiry_margin: "soon" is not a duration`, 12},
		{"certificate without a key", "client_certificate cert.pem", route, "client_certificate: want <certificate.pem> <key.pem>, got 1 arguments", 4},
		{"certificate option unknown", "client_certificate c.pem k.pem {\n send_chain\n }", route, `client_certificate: unknown option "send_chain"`, 5},
		{"two managed identities", "managed_identity a b", route, "wrong argument count", 4},
		{"two token files", "client_assertion_file a b", route, "wrong argument count", 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := caddyconfig.GetAdapter("caddyfile").Adapt(errorCase(tt.registration, tt.route), nil)
			if err == nil {
				t.Fatalf("adapted; want an error containing %q", tt.wantErr)
			}
			at := fmt.Sprintf("Caddyfile:%d", tt.line)
			if !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), at) {
				t.Fatalf("error = %v, want one containing %q and %q", err, tt.wantErr, at)
			}
		})
	}
}

// TestLoadTimeErrors checks that a broken config that adapts fails when it loads (placeholders are resolved then),
// with a message naming the field.
func TestLoadTimeErrors(t *testing.T) {
	const route = "api://x/.default"
	longValue := strings.Repeat("s3cr3t", 8)
	for k, v := range map[string]string{"TI_TEST_WORD": "abc", "TI_TEST_NEGATIVE": "-5", "TI_TEST_COMMON": "common",
		"TI_TEST_HTTP": "http://login.example", "TI_TEST_SHORT_SCOPE": "User.Read", "TI_TEST_LONG": longValue,
		"AZURE_FEDERATED_TOKEN_FILE": ""} {
		t.Setenv(k, v)
	}
	tests := []struct {
		name, registration, route, wantErr string
	}{
		{"missing tenant", "client_id c\n client_secret s", route, "tenant: required"},
		{"missing client_id", "tenant t\n client_secret s", route, "client_id: required"},
		{"no credential", "tenant t\n client_id c", route, "a credential is required: set exactly one of client_secret, client_certificate, client_assertion_file or managed_identity"},
		{"global option named", "tenant t\n client_id c", route, "token_injector (global option): a credential is required"},
		{"two credentials", "tenant t\n client_id c\n client_secret s\n managed_identity", route, "client_secret and managed_identity are both set: set exactly one credential"},
		{"three credentials", "tenant t\n client_id c\n client_secret s\n client_certificate c.pem k.pem\n client_assertion_file /t", route,
			"client_secret, client_certificate and client_assertion_file are all set: set exactly one credential"},
		{"certificate and managed identity", "tenant t\n client_id c\n client_certificate c.pem k.pem\n managed_identity 0000", route, "client_certificate and managed_identity are both set"},
		{"certificate file missing", "tenant t\n client_id c\n client_certificate /nonexistent/c.pem /nonexistent/k.pem", route, "client_certificate: certificate file: open /nonexistent/c.pem: no such file"},
		{"assertion file missing", "tenant t\n client_id c\n client_assertion_file /nonexistent/token", route, "client_assertion_file: stat /nonexistent/token: no such file"},
		{"assertion file variable unset", "tenant t\n client_id c\n client_assertion_file", route, "client_assertion_file: {env.AZURE_FEDERATED_TOKEN_FILE} resolves to nothing"},
		{"empty scope list", fullRegistration, "", "scopes: at least one scope"},
		{"secret from an unset env var", "tenant t\n client_id c\n client_secret {env.TOKEN_INJECTOR_TEST_UNSET}", route, "client_secret: {env.TOKEN_INJECTOR_TEST_UNSET} resolves to nothing"},
		{"scope from an unset env var", fullRegistration, "{env.TOKEN_INJECTOR_TEST_UNSET}", "scopes: at least one scope"},
		{"duration from an env var", fullRegistration + "\n timeout {env.TI_TEST_WORD}", route,
			`token_injector (global option): timeout: "{env.TI_TEST_WORD}" resolved to "abc", which is not a duration`},
		{"negative duration from an env var", fullRegistration + "\n refresh_before {env.TI_TEST_NEGATIVE}m", route,
			`refresh_before: "{env.TI_TEST_NEGATIVE}m" resolved to "-5m", which is not a positive duration`},
		{"number from an env var", fullRegistration + "\n cache_max_entries {env.TI_TEST_NEGATIVE}", route,
			`cache_max_entries: "{env.TI_TEST_NEGATIVE}" resolved to "-5", which is not a positive number`},
		{"a long value is not quoted", fullRegistration + "\n clock_skew {env.TI_TEST_LONG}", route,
			`clock_skew: "{env.TI_TEST_LONG}" resolved to a value of 48 characters, which is not a duration`},
		{"multi-tenant from an env var without allowed_tenants", "tenant {env.TI_TEST_COMMON}\n client_id c\n client_secret s", route,
			"allowed_tenants: required with tenant common: name the tenant IDs whose users may call, or * for any tenant"},
		{"allowed_tenants with one directory", fullRegistration + "\n allowed_tenants *", route, "allowed_tenants: only with tenant organizations or common"},
		{"allow_anonymous without app_only", fullRegistration, route + " {\n allow_anonymous\n }", "allow_anonymous: only for app_only routes"},
		{"app_only with a delegated scope", fullRegistration, "https://graph.microsoft.com/User.Read {\n app_only\n }", "app_only: scopes must be one <resource>/.default"},
		{"anonymous app_only on a multi-tenant registration", "tenant organizations\n allowed_tenants *\n client_id c\n client_secret s", route + " {\n app_only\n allow_anonymous\n }",
			"allow_anonymous: tenant organizations: an anonymous caller names no tenant"},
		{"authority from an env var", fullRegistration + "\n authority_host {env.TI_TEST_HTTP}", route, "authority_host"},
		{"scope from an env var", fullRegistration, "{env.TI_TEST_SHORT_SCOPE}", `scopes: "User.Read" names no resource`},
		{"inline duration from an env var", fullRegistration, route + " {\n expiry_margin {env.TI_TEST_WORD}\n }",
			`token_injector: expiry_margin: "{env.TI_TEST_WORD}" resolved to "abc", which is not a duration`},
		{"sign-in duration from an env var", fullRegistration, route + " {\n sign_in {\n cookie_secret " + cookieSecret +
			"\n idle_timeout {env.TI_TEST_WORD}\n }\n }", `sign_in: idle_timeout: "{env.TI_TEST_WORD}" resolved to "abc"`},
		{"sign-in login timeout under a minute", fullRegistration, route + " {\n sign_in {\n cookie_secret " + cookieSecret +
			"\n login_timeout 30s\n }\n }", "sign_in: login_timeout: must be between 1m and 1h, got 30s"},
		{"sign-in without a cookie secret", fullRegistration, route + " {\n sign_in {\n path /.auth\n }\n }", "sign_in: cookie_secret: required"},
		{"sign-in with a short key", fullRegistration, route + " {\n sign_in {\n cookie_secret c2hvcnQ=\n }\n }", "cookie_secret"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfgJSON, _, err := caddyconfig.GetAdapter("caddyfile").Adapt(errorCase(tt.registration, tt.route), nil)
			if err != nil {
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
			if strings.Contains(err.Error(), longValue) {
				t.Fatalf("error = %v; it quotes the value of an env var", err)
			}
		})
	}
}

func TestCheckScope(t *testing.T) {
	tests := []struct {
		scope, wantErr string
	}{
		{"https://graph.microsoft.com/User.Read", ""},
		{"https://graph.microsoft.com/.default", ""},
		{"https://graph.microsoft.us/Mail.Read", ""},
		{"api://x/.default", ""},
		{"api://downstream/Data.Read", ""},
		{"api://contoso.example/11111111-2222-3333-4444-555555555555/access_as_user", ""},
		{"00000003-0000-0000-c000-000000000000/User.Read", ""},
		{"openid", ""}, {"profile", ""}, {"offline_access", ""}, {"email", ""}, {"OpenID", ""},
		{"User.Read", `"User.Read" names no resource; write the full form, such as https://graph.microsoft.com/User.Read`},
		{".default", "names no resource"},
		{"x/.default", "is not <resource>/<permission>"},
		{"graph.microsoft.com/User.Read", "is not <resource>/<permission>"},
		{"https://graph.microsoft.com", "is not <resource>/<permission>"},
		{"https://graph.microsoft.com/", "is not <resource>/<permission>"},
		{"api:///x", "is not <resource>/<permission>"},
		{"1http://x/y", "is not <resource>/<permission>"},
		{"00000003-0000-0000-c000-000000000000/", "is not <resource>/<permission>"},
		{"", "is not a scope"},
		{"a b", "is not a scope"},
		{`https://graph.microsoft.com/User.Read"`, "is not a scope"},
	}
	for _, tt := range tests {
		err := checkScope(tt.scope)
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("checkScope(%q) = %v, want nil", tt.scope, err)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("checkScope(%q) = %v, want an error containing %q", tt.scope, err, tt.wantErr)
		}
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
