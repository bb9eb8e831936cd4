package caddymodule_test

import (
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/tokeninjector/caddy-token-injector/internal/dev/entraemu"
)

// A misconfiguration is not an outage: a certificate that does not verify, an unknown tenant and a key document
// that is not there are the operator's to fix. Each gets 502 server_error, never 503, and one error log line that
// names the call, the cause and the fix.
func TestMisconfigurationIsAServerErrorWithOneLogLine(t *testing.T) {
	jwks404 := startDocumentServer(t)
	client := startCaddy(t)
	loadConfig(t, siteConfig(errorRoutes+misconfiguredRoutes(jwks404)))
	t.Cleanup(func() { loadConfig(t, siteConfig(errorRoutes)) })

	tests := []struct {
		name, path string
		logWords   []string // each must be in the one log line
	}{
		{"CA left out of tls_trust_pool", "/untrusted/me", []string{"fetching signing keys", "certificate", "tls_trust_pool"}},
		{"unknown tenant", "/unknown-tenant/me", []string{"fetching signing keys", "AADSTS90002", "check tenant"}},
		{"JWKS 404", "/jwks404/me", []string{"fetching signing keys", "404", "check authority_host"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := linesAbout(tt.path)
			status, _, body := call(t, client, tt.path, ssoToken(t, freshUser(t).Key, entraemu.MintOptions{}))
			if status != http.StatusBadGateway || body["error"] != "server_error" {
				t.Fatalf("got %d %v, want 502 server_error", status, body)
			}
			waitUntil(t, "the log line", func() bool { return len(linesAbout(tt.path)) > len(before) })
			lines := linesAbout(tt.path)[len(before):]
			if len(lines) != 1 {
				t.Fatalf("%d log lines, want 1: %q", len(lines), lines)
			}
			for _, w := range tt.logWords {
				if !strings.Contains(lines[0], w) {
					t.Errorf("the log line lacks %q: %s", w, lines[0])
				}
			}
			if !strings.Contains(lines[0], `"level":"error"`) {
				t.Errorf("want an error-level line: %s", lines[0])
			}
		})
	}
}

// linesAbout returns the handler's log lines (not the access log's) for requests to path.
func linesAbout(path string) []string {
	var out []string
	for _, line := range strings.Split(readLogs(), "\n") {
		if strings.Contains(line, `"logger":"http.handlers.token_injector"`) && strings.Contains(line, `"uri":"`+path+`"`) {
			out = append(out, line)
		}
	}
	return out
}

// misconfiguredRoutes are registrations that differ from the working one in one wrong setting each.
func misconfiguredRoutes(jwks404 *documentServer) string {
	return fmt.Sprintf(`
	route /untrusted/* {
		token_injector {
			scopes https://graph.microsoft.com/User.Read
			client_id 7d1d0000-0000-4000-8000-000000000003
			client_secret never-sent
			audience %[1]s %[2]s
			tls_trust_pool file %[3]s
		}
	}
	route /unknown-tenant/* {
		token_injector {
			scopes https://graph.microsoft.com/User.Read
			tenant no-such-tenant.example
		}
	}
	route /jwks404/* {
		token_injector {
			scopes https://graph.microsoft.com/User.Read
			authority_host %[4]s
			tenant %[5]s
			tls_trust_pool file %[3]s
		}
	}`, entraemu.DefaultAddinClientID, entraemu.DefaultAddinIdentifierURI, jwks404.caFile, jwks404.URL, jwks404.tenant)
}

// documentServer is an Entra look-alike whose discovery documents point at a key set that is not there.
type documentServer struct {
	*httptest.Server
	tenant string
	caFile string // trusts this server only, not the emulator
}

func startDocumentServer(t *testing.T) *documentServer {
	d := &documentServer{tenant: "c0ffee00-0000-4000-8000-00000000d0c5"}
	d.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		base := d.URL + "/" + d.tenant
		switch r.URL.Path {
		case "/" + d.tenant + "/v2.0/.well-known/openid-configuration":
			_ = json.NewEncoder(w).Encode(map[string]string{"issuer": base + "/v2.0", "jwks_uri": base + "/keys",
				"token_endpoint": base + "/oauth2/v2.0/token", "authorization_endpoint": base + "/oauth2/v2.0/authorize"})
		case "/" + d.tenant + "/.well-known/openid-configuration":
			_ = json.NewEncoder(w).Encode(map[string]string{"issuer": "https://sts.example/" + d.tenant + "/", "jwks_uri": base + "/keys"})
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(d.Close)
	d.caFile = filepath.Join(t.TempDir(), "docs-ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: d.Certificate().Raw})
	if err := os.WriteFile(d.caFile, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	return d
}

// A secret written in the config (not {env.X} or {file./path}) lands in the JSON config, GET /config/ and
// autosave.json: the load logs one warning naming the field, and never the value.
func TestInlineSecretIsWarnedAbout(t *testing.T) {
	startCaddy(t)
	// Caddy itself logs the JSON config at debug level, inline secrets included: that is why they warrant a
	// warning. The warning must not repeat the value.
	const inline = "inline-secret-value-8f3a"
	warnings := func() (n int) {
		for _, line := range strings.Split(readLogs(), "\n") {
			if strings.Contains(line, "a secret is written in the config") && strings.Contains(line, "7d1d0000-0000-4000-8000-0000000000ff") {
				n++
				if !strings.Contains(line, `"field":"client_secret"`) || strings.Contains(line, inline) {
					t.Errorf("warning: %s", line)
				}
			}
		}
		return n
	}
	before := warnings()
	loadConfig(t, siteConfig(errorRoutes+`
	route /inline/* {
		token_injector {
			scopes https://graph.microsoft.com/User.Read
			client_id 7d1d0000-0000-4000-8000-0000000000ff
			client_secret `+inline+`
		}
	}
	route /inline2/* {
		token_injector {
			scopes https://graph.microsoft.com/Mail.Read
			client_id 7d1d0000-0000-4000-8000-0000000000ff
			client_secret `+inline+`
		}
	}`))
	t.Cleanup(func() { loadConfig(t, siteConfig(errorRoutes)) })
	if n := warnings() - before; n != 1 {
		t.Fatalf("%d warnings for one registration with an inline secret in two routes, want 1", n)
	}
}

// Secrets passed as {env.X} stay placeholders in the adapted JSON and in what the admin API's GET /config/ (and
// so autosave.json) holds: neither the client secret nor the cookie key appears.
func TestNoSecretInAdminConfigOrAdaptOutput(t *testing.T) {
	startCaddy(t)
	resp, err := http.Get("http://" + env.caddy.AdminAddr + "/config/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	live, _ := io.ReadAll(resp.Body)
	adapted, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(siteConfig(errorRoutes)), nil)
	if err != nil {
		t.Fatal(err)
	}
	cookieKey := base64.StdEncoding.EncodeToString(testCookieKey)
	for name, doc := range map[string][]byte{"GET /config/": live, "caddy adapt": adapted} {
		if resp.StatusCode != 200 || !strings.Contains(string(doc), "{env.TOKEN_INJECTOR_TEST_SECRET}") {
			t.Fatalf("%s does not hold the config: %d %.200s", name, resp.StatusCode, doc)
		}
		for what, secret := range map[string]string{"client secret": env.secret, "rotated secret": rotatedSecret, "cookie key": cookieKey} {
			if strings.Contains(string(doc), secret) {
				t.Errorf("%s holds the %s", name, what)
			}
		}
	}
}

// Every example Caddyfile passes its secrets as placeholders that resolve when the config loads.
func TestExamplesKeepSecretsOutOfTheConfig(t *testing.T) {
	files, _ := filepath.Glob("../examples/*/Caddyfile")
	if len(files) == 0 {
		t.Fatal("no example Caddyfiles found")
	}
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		adapted, _, err := caddyconfig.GetAdapter("caddyfile").Adapt(src, map[string]any{"filename": f})
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		var walk func(key string, v any)
		walk = func(key string, v any) {
			switch v := v.(type) {
			case map[string]any:
				for k, x := range v {
					walk(k, x)
				}
			case []any:
				for _, x := range v {
					walk(key, x)
				}
			case string:
				if (key == "client_secret" || key == "cookie_secrets") && !strings.HasPrefix(v, "{env.") && !strings.HasPrefix(v, "{file.") {
					t.Errorf("%s: %s is not a run-time placeholder", f, key)
				}
			}
		}
		var doc any
		_ = json.Unmarshal(adapted, &doc)
		walk("", doc)
	}
}
