package caddymodule

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/tokeninjector/caddy-token-injector/internal/cors"
)

// FuzzUnmarshalCaddyfile reads arbitrary Caddyfile text as the token_injector handler directive and as the global
// option. Neither panics; an error has text and names its Caddyfile line; and a success means what the syntax doc
// promises: every value without a placeholder already passed its check, and the result survives the trip through
// JSON that adapting makes (the JSON is the config Caddy runs).
func FuzzUnmarshalCaddyfile(f *testing.F) {
	for _, seed := range []string{
		`token_injector https://graph.microsoft.com/User.Read https://graph.microsoft.com/Mail.Read`,
		"token_injector {\n\tscopes api://other/.default openid profile offline_access email\n}",
		`token_injector https://graph.microsoft.com/.default {
	authority_host    https://login.microsoftonline.us/
	tenant            72f988bf-86f1-41af-91ab-2d7cd011db47
	client_id         0a1b2c3d-1111-2222-3333-444455556666
	client_secret     {env.CLIENT_SECRET}
	audience          api://localhost/0a1b2c3d-1111-2222-3333-444455556666 api://alias
	audiences         api://more
	tls_trust_pool    file /etc/ssl/emulator-ca.pem
	cache_max_entries 100000
	timeout           10s
	refresh_before    5m
	expiry_margin     1m
	clock_skew        1m
	allowed_origins   https://addin.example http://localhost:3000
	sign_in {
		cookie_secret    {file./run/secrets/cookie} b2xkZXIta2V5LW9mLTMyLWJ5dGVzLXh4eHh4eHh4eHg=
		path             /.auth
		same_site        none
		partitioned
		idle_timeout     8h
		absolute_timeout 168h
		end_session
	}
}`,
		`token_injector {env.SCOPE} {
	tenant {env.TENANT}
	cache_max_entries {env.N}
	timeout {env.T}
	clock_skew {env.SKEW}s
	allowed_origins {env.ORIGIN}
	sign_in {
		cookie_secrets {env.COOKIE}
		same_site {env.SAME_SITE}
		idle_timeout {env.IDLE}
		path {env.AUTH_PATH}
	}
}`,
		"token_injector {\n\ttls_trust_pool inline {\n\t\ttrust_der MIIB\n\t}\n}",
		"token_injector {\n\ttls_trust_pool nosuch\n}",
		"token_injector {\n\ttls_trust_pool file /a.pem\n\ttls_trust_pool file /b.pem\n}",
		"token_injector {\n\ttennant x\n}",
		"token_injector {\n\tscopes\n}",
		"token_injector User.Read",
		"token_injector {\n\ttimeout -1m\n}",
		"token_injector {\n\tallowed_origins https://a.example/path\n}",
		"token_injector {\n\tsign_in x {\n\t}\n}",
		"token_injector {\n\tsign_in {\n\t\tsame_site sideways\n\t\tpath relative\n\t}\n}",
		"token_injector {\n\tsign_in {\n\t\tsign_in {\n\t\t}\n\t}\n}",
		"token_injector extra {\n\ttenant contoso.onmicrosoft.com\n}",
		"token_injector {\n\tcache_max_entries +5\n}", "token_injector {\n\tcache_max_entries 007\n}",
		"token_injector {\n\tcaller_scopes access_as_user\n\tcaller_apps 11111111-2222-3333-4444-555555555555\n}",
		"token_injector", "token_injector {", "token_injector }", "{", "", `"`, "token_injector {\n\ttenant \"\"\n}",
	} {
		f.Add(seed)
	}

	f.Fuzz(func(t *testing.T, input string) {
		// NewTestDispenser exits the process on a lexer error, and it expands {$X} from the environment; the
		// lexer's own refusals are not ours to test, so tokenize here and skip what does not lex.
		tokens, err := caddyfile.Tokenize([]byte(input), "Testfile")
		if err != nil || len(tokens) == 0 {
			return
		}

		var h Handler
		if err := h.UnmarshalCaddyfile(caddyfile.NewDispenser(tokens)); err != nil {
			checkErr(t, "handler", err)
		} else {
			for _, s := range h.Scopes {
				mustPass(t, "scope", s, checkScope)
			}
			if h.Registration != nil {
				checkRegistration(t, h.Registration)
			}
			var back Handler
			roundTrip(t, &h, &back)
			if !reflect.DeepEqual(h, back) {
				t.Fatalf("handler changed through JSON:\n%#v\n%#v", h, back)
			}
		}

		v, err := parseGlobalOption(caddyfile.NewDispenser(tokens), nil)
		if err != nil {
			checkErr(t, "global option", err)
			if v != nil {
				t.Fatalf("global option: value %#v with error %v", v, err)
			}
			return
		}
		app, ok := v.(httpcaddyfile.App)
		if !ok || app.Name != appName {
			t.Fatalf("global option: value %#v is not the %s app", v, appName)
		}
		// The global option took no arguments, so the handler read the same block into h.Registration.
		var a App
		if err := json.Unmarshal(app.Value, &a); err != nil {
			t.Fatalf("global option: JSON %q does not load: %v", app.Value, err)
		}
		checkRegistration(t, &a.Registration)
	})
}

// checkErr: an error has text and names the Caddyfile line it came from.
func checkErr(t *testing.T, what string, err error) {
	t.Helper()
	if err.Error() == "" {
		t.Fatalf("%s: empty error", what)
	}
	if !strings.Contains(err.Error(), "Testfile:") {
		t.Fatalf("%s: error %q does not name its line", what, err)
	}
}

// checkRegistration: every value without a placeholder passed the check the config would apply when provisioned.
func checkRegistration(t *testing.T, r *Registration) {
	t.Helper()
	mustPass(t, "authority_host", r.AuthorityHost, func(v string) error { return checkAuthorityHost(strings.TrimSuffix(v, "/")) })
	mustPass(t, "tenant", r.Tenant, checkTenant)
	for _, o := range r.AllowedOrigins {
		mustPass(t, "allowed_origins", o, func(v string) error { _, err := cors.NormalizeOrigin(v); return err })
	}
	mustPass(t, "cache_max_entries", string(r.CacheMaxEntries), func(v string) error { _, err := parseNumber("n", v, v); return err })
	for name, d := range map[string]Duration{"timeout": r.Timeout, "refresh_before": r.RefreshBefore,
		"expiry_margin": r.ExpiryMargin, "clock_skew": r.ClockSkew} {
		mustPass(t, name, string(d), func(v string) error { _, err := parseDuration(name, v, v); return err })
	}
	if s := r.SignIn; s != nil {
		mustPass(t, "sign_in path", s.Path, checkSignInPath)
		mustPass(t, "sign_in same_site", s.SameSite, checkSameSite)
		for name, d := range map[string]Duration{"idle_timeout": s.IdleTimeout, "absolute_timeout": s.AbsoluteTimeout,
			"login_timeout": s.LoginTimeout} {
			mustPass(t, name, string(d), func(v string) error { _, err := parseDuration(name, v, v); return err })
		}
	}
}

// mustPass fails unless v is unset, holds a placeholder, or passes check.
func mustPass(t *testing.T, field, v string, check func(string) error) {
	t.Helper()
	if v == "" || hasPlaceholder(v) {
		return
	}
	if err := check(v); err != nil {
		t.Fatalf("%s %q was accepted, but the provision-time check refuses it: %v", field, v, err)
	}
}

// roundTrip marshals v as the adapter does and loads it into back.
func roundTrip(t *testing.T, v, back any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("accepted, but does not marshal to JSON: %v", err)
	}
	if err := json.Unmarshal(b, back); err != nil {
		t.Fatalf("accepted, but its JSON %s does not load: %v", b, err)
	}
}
