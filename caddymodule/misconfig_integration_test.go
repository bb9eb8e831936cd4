package caddymodule_test

import (
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
