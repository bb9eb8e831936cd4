package caddymodule_test

import (
	"encoding/base64"
	"fmt"
	"strings"
	"testing"

	_ "github.com/tokeninjector/caddy-token-injector/internal/dev/demo" // entra_emulator, as the demo runs it
	"github.com/tokeninjector/caddy-token-injector/internal/dev/entraemu"
	"github.com/tokeninjector/caddy-token-injector/internal/dev/testenv"
)

// The demo's published cookie key signs sessions only when the same config runs the built-in emulator as the
// registration's authority. Any other authority, a loopback one included, refuses to load, with an error that
// names cookie_secret and says how to make a key.
func TestPublishedCookieKeyOnlyForTheBuiltInEmulator(t *testing.T) {
	startCaddy(t)
	t.Cleanup(func() { loadConfig(t, siteConfig(errorRoutes)) })
	emuAddr, err := testenv.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	emulated := "https://" + strings.Replace(emuAddr, "127.0.0.1", "localhost", 1)
	demoKey := base64.RawURLEncoding.EncodeToString([]byte("demo-only-cookie-secret-32-bytes")) // another spelling
	tests := []struct {
		name, authority string
		wantErr         bool
	}{
		{"the config's own emulator", emulated, false},
		{"another loopback authority", "https://localhost:1", true},
		{"the public cloud", "https://login.microsoftonline.com", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := env.caddy.LoadCaddyfile(fmt.Sprintf(`{
	skip_install_trust
}
%[1]s {
	tls internal
	entra_emulator {
		base_url %[1]s
	}
}
%[2]s {
	token_injector /graph/* https://graph.microsoft.com/User.Read {
		authority_host %[3]s
		tenant %[4]s
		client_id %[5]s
		client_secret {env.TOKEN_INJECTOR_TEST_SECRET}
		sign_in {
			cookie_secret %[6]s
		}
	}
	respond 200
}`, emulated, siteBase, tt.authority, entraemu.DefaultTenantDomain, entraemu.DefaultAddinClientID, demoKey))
			if tt.wantErr != (err != nil) {
				t.Fatalf("load: %v, want error %v", err, tt.wantErr)
			}
			if err != nil && (!strings.Contains(err.Error(), "cookie_secret") || !strings.Contains(err.Error(), "openssl rand -base64 32") ||
				strings.Contains(err.Error(), demoKey)) {
				t.Fatalf("the error must name cookie_secret, say how to make a key, and not print it: %v", err)
			}
		})
	}
}
