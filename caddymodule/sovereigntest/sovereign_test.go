package sovereigntest_test

import (
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/tokeninjector/caddy-token-injector/caddymodule"
	"github.com/tokeninjector/caddy-token-injector/internal/dev/entraemu"
	"github.com/tokeninjector/caddy-token-injector/internal/dev/testenv"
)

// cloudHosts are the sovereign sign-in hosts the CONNECT proxy sends to the emulator; any other is refused.
var cloudHosts = map[string]bool{"login.microsoftonline.us:443": true, "login.chinacloudapi.cn:443": true}

// emulatorAddr is where the proxy tunnels to: the current test's emulator.
var emulatorAddr atomic.Pointer[string]

var dir string

func TestMain(m *testing.M) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	go func() { _ = http.Serve(ln, http.HandlerFunc(tunnel)) }()
	// Before anything reads it: net/http reads the proxy settings once. Loopback calls never use a proxy.
	os.Setenv("HTTPS_PROXY", "http://"+ln.Addr().String())
	os.Unsetenv("NO_PROXY")
	if dir, err = os.MkdirTemp("", "sovereign-test-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// tunnel is a CONNECT proxy to the emulator, for the sovereign hosts only.
func tunnel(w http.ResponseWriter, r *http.Request) {
	target := emulatorAddr.Load()
	if r.Method != http.MethodConnect || !cloudHosts[r.Host] || target == nil {
		http.Error(w, "this test proxy only reaches the sovereign sign-in hosts", http.StatusForbidden)
		return
	}
	up, err := net.DialTimeout("tcp", *target, 5*time.Second)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		up.Close()
		return
	}
	_, _ = conn.Write([]byte("HTTP/1.1 200 Connection established\r\n\r\n"))
	go func() { _, _ = io.Copy(up, conn); up.Close() }()
	go func() { _, _ = io.Copy(conn, up); conn.Close() }()
}

const (
	appID       = "50e00000-0000-4000-8000-000000000001"
	identityID  = "50e00000-0000-4000-8000-0000000000a1"
	identityOID = "50e00000-0000-4000-8000-0000000000b1"
)

// startCloud serves the emulator as authorityHost's cloud, with an app whose only credential is a managed
// identity federated credential for that cloud's exchange audience.
func startCloud(t *testing.T, authorityHost string) (*entraemu.Emulator, string) {
	t.Helper()
	cfg := entraemu.DefaultConfig()
	cfg.Apps = append(cfg.Apps, entraemu.App{ClientID: appID, Name: "sovereign-api",
		IdentifierURIs: []string{"api://sovereign/" + appID}, ExposedScopes: []string{"access_as_user"},
		PreConsented: true, RequiredPermissions: map[string][]string{entraemu.DefaultDownstreamURI: {"Data.Read"}}})
	cfg.ManagedIdentities = []entraemu.ManagedIdentity{{ClientID: identityID, ObjectID: identityOID}}
	emu, err := entraemu.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := entraemu.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	host := strings.TrimPrefix(authorityHost, "https://")
	tlsCfg, err := ca.ServerTLSConfig(host)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", tlsCfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: emu, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	emu.SetBaseURL(authorityHost)
	addr := ln.Addr().String()
	emulatorAddr.Store(&addr)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, ca.CertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	emu.AddFederatedCredential(appID, entraemu.FederatedCredential{Issuer: emu.Issuer(), Subject: identityOID,
		Audiences: []string{emu.TokenExchangeAudience()}})
	// The managed identity endpoint is local, as on App Service: the proxy reaches it by its loopback address.
	_, header := emu.ManagedIdentityEndpoint()
	t.Setenv("IDENTITY_ENDPOINT", "https://"+addr+"/msi/token")
	t.Setenv("IDENTITY_HEADER", header)
	return emu, caFile
}

// The sovereign clouds end to end: discovery, caller tokens of both issuer forms (v1 names the cloud's STS), the
// managed identity token for the cloud's own exchange audience, and OBO.
func TestSovereignClouds(t *testing.T) {
	testenv.Integration(t)
	caddy, err := testenv.NewCaddy(filepath.Join(dir, "caddy"))
	if err != nil {
		t.Fatal(err)
	}
	defer caddy.Stop()
	site, err := testenv.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, authorityHost, v1Issuer, audience string
	}{
		{"US Government", "https://login.microsoftonline.us", "https://sts.windows.net/", "api://AzureADTokenExchangeUSGov"},
		{"China", "https://login.chinacloudapi.cn", "https://sts.chinacloudapi.cn/", "api://AzureADTokenExchangeChina"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			emu, caFile := startCloud(t, tt.authorityHost)
			if emu.TokenExchangeAudience() != tt.audience {
				t.Fatalf("the emulator's audience for %s is %s", tt.name, emu.TokenExchangeAudience())
			}
			upstream, err := testenv.StartUpstream(entraemu.NewDownstreamAPI(emu), testenv.UpstreamOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer upstream.Close()
			err = caddy.LoadCaddyfile(fmt.Sprintf(`{
	admin %s
	skip_install_trust
	auto_https off
}
http://%s {
	token_injector api://downstream/Data.Read {
		authority_host %s
		tenant %s
		client_id %s
		managed_identity %s
		tls_trust_pool file %s
		timeout 5s
	}
	reverse_proxy %s
}`, caddy.AdminAddr, site, tt.authorityHost, entraemu.DefaultTenantDomain, appID, identityID, caFile, upstream.Addr))
			if err != nil {
				t.Fatal(err)
			}
			for _, version := range []int{1, 2} {
				user := map[int]string{1: "adele", 2: "alex"}[version]
				sso, err := emu.MintAccessToken(user, entraemu.MintOptions{Audience: appID, Version: version})
				if err != nil {
					t.Fatal(err)
				}
				iss := issuerOf(t, sso)
				if version == 1 && !strings.HasPrefix(iss, tt.v1Issuer) || version == 2 && !strings.HasPrefix(iss, tt.authorityHost) {
					t.Fatalf("a v%d caller token of %s has iss %s", version, tt.name, iss)
				}
				status, body := get(t, "http://"+site+"/data", sso)
				if status != http.StatusOK || body["aud"] != entraemu.DefaultDownstreamAppID || body["oid"] != objectID(user) {
					t.Fatalf("v%d caller: %d %v", version, status, body)
				}
			}
			if n := emu.ManagedIdentityTokens(identityID); n != 1 {
				t.Errorf("%d managed identity tokens, want 1", n)
			}
			if seen := emu.ClientCredentials(appID); seen.Federated != 2 || seen.Secret != 0 {
				t.Errorf("the emulator saw %+v", seen)
			}
		})
	}
}

func issuerOf(t *testing.T, tok string) string {
	t.Helper()
	var c struct {
		Iss string `json:"iss"`
	}
	parts := strings.Split(tok, ".")
	b, _ := base64.RawURLEncoding.DecodeString(parts[1])
	_ = json.Unmarshal(b, &c)
	return c.Iss
}

func get(t *testing.T, u, bearer string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	req.Header.Set("Authorization", "Bearer "+bearer)
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body
}

func objectID(key string) string {
	for _, u := range entraemu.DefaultConfig().Users {
		if u.Key == key {
			return u.ObjectID
		}
	}
	return "no user " + key
}
