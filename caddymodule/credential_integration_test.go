package caddymodule_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokeninjector/caddy-token-injector/internal/dev/entraemu"
	"github.com/tokeninjector/caddy-token-injector/internal/dev/testenv"
)

// Secretless credentials through a real Caddy, MSAL Go and the emulator. The credentials app has a client secret
// too, as real registrations often do: the emulator's record proves the proxy never sent it when configured with
// another credential.

const (
	credsAppID        = "c4ed0000-0000-4000-8000-000000000005"
	credsAppSecret    = "creds-app-secret-never-configured"
	credsTestSA       = "proxy"
	credsTestNS       = "addin"
	credsGraphPath    = "/me"
	managedIdentityID = "3a1a0000-0000-4000-8000-0000000000a1"
)

// testManagedIdentity is the user-assigned identity of the emulated host.
var testManagedIdentity = entraemu.ManagedIdentity{ClientID: managedIdentityID, ObjectID: "0b1e0000-0000-4000-8000-0000000000a1"}

// credentialsApp is a web API registration whose credentials the tests add at run time (certificates, federated
// credentials), as an administrator would.
func credentialsApp() entraemu.App {
	return entraemu.App{ClientID: credsAppID, Secret: credsAppSecret, Name: "creds-api",
		IdentifierURIs: []string{"api://creds.example/" + credsAppID}, ExposedScopes: []string{"access_as_user"},
		PreConsented: true, AccessTokenVersion: 2,
		RequiredPermissions: map[string][]string{"https://graph.microsoft.com": {"User.Read"}}}
}

// credentialRoute is a route of the credentials app with the given credential lines.
func credentialRoute(prefix, credential string) string {
	return fmt.Sprintf(`
	route /%s/* {
		token_injector {
			scopes https://graph.microsoft.com/User.Read
			client_id %s
			%s
		}
	}`, prefix, credsAppID, credential)
}

// callAs sends a request for a fresh user of the credentials app through prefix.
func callAs(t *testing.T, prefix string, user entraemu.User) (int, map[string]any) {
	t.Helper()
	status, _, body := call(t, env.client, "/"+prefix+credsGraphPath, ssoToken(t, user.Key, entraemu.MintOptions{Audience: credsAppID}))
	return status, body
}

// rememberFile adds a credential file's contents to what the log check looks for.
func rememberFile(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if len(line) > 40 && !strings.HasPrefix(line, "-----") {
			rememberCredential(line)
		}
	}
}

func TestOnBehalfOfWithACertificate(t *testing.T) {
	startCaddy(t)
	dir := t.TempDir()
	// Ten days left: the load warns.
	cert, err := testenv.NewClientCertificate(dir, "creds", time.Now().Add(10*24*time.Hour), true)
	if err != nil {
		t.Fatal(err)
	}
	rememberFile(t, cert.KeyFile)
	env.Emu.AddCertificate(credsAppID, cert.Cert)
	logsBefore := len(caddyLog())
	loadConfig(t, siteConfig(errorRoutes+credentialRoute("cert", "client_certificate "+cert.CertFile+" "+cert.KeyFile)))
	t.Cleanup(func() { loadConfig(t, siteConfig(errorRoutes)) })
	if logs := caddyLog()[logsBefore:]; !strings.Contains(logs, "the client certificate expires within 30 days") ||
		!strings.Contains(logs, `"days_left":9`) {
		t.Errorf("no expiry warning at load")
	}

	before := env.Emu.ClientCredentials(credsAppID)
	user := freshUser(t)
	status, body := callAs(t, "cert", user)
	if status != http.StatusOK || body["oid"] != user.ObjectID || body["aud"] != entraemu.GraphURI {
		t.Fatalf("%d %v", status, body)
	}
	after := env.Emu.ClientCredentials(credsAppID)
	if after.Certificate != before.Certificate+1 || after.Secret != before.Secret {
		t.Fatalf("the emulator saw %+v after %+v: want one certificate assertion and no secret", after, before)
	}
}

// A certificate the app registration does not have is the operator's to fix: 502 server_error, and one error
// line with AADSTS700027 and what to do.
func TestUnregisteredCertificateIsAServerError(t *testing.T) {
	startCaddy(t)
	stranger, err := testenv.NewClientCertificate(t.TempDir(), "stranger", time.Now().Add(365*24*time.Hour), false)
	if err != nil {
		t.Fatal(err)
	}
	rememberFile(t, stranger.KeyFile)
	loadConfig(t, siteConfig(errorRoutes+credentialRoute("stranger", "client_certificate "+stranger.CertFile+" "+stranger.KeyFile)))
	t.Cleanup(func() { loadConfig(t, siteConfig(errorRoutes)) })

	path := "/stranger" + credsGraphPath
	before := linesAbout(path)
	status, body := callAs(t, "stranger", freshUser(t))
	if status != http.StatusBadGateway || body["error"] != "server_error" {
		t.Fatalf("got %d %v, want 502 server_error", status, body)
	}
	waitUntil(t, "the log line", func() bool { return len(linesAbout(path)) > len(before) })
	lines := linesAbout(path)[len(before):]
	if len(lines) != 1 || !strings.Contains(lines[0], "AADSTS700027") || !strings.Contains(lines[0], "upload client_certificate's certificate") ||
		!strings.Contains(lines[0], `"level":"error"`) {
		t.Fatalf("want one error line naming AADSTS700027 and the fix, got %q", lines)
	}
}

// AKS workload identity: kubelet rotates the projected token by swapping ..data. A new assertion written while
// the old one expires is what the next user's request carries.
func TestFederatedTokenFileRotation(t *testing.T) {
	startCaddy(t)
	aks, err := env.Emu.WorkloadIssuer("aks-test-cluster")
	if err != nil {
		t.Fatal(err)
	}
	env.Emu.AddFederatedCredential(credsAppID, entraemu.FederatedCredential{Issuer: aks.URL(),
		Subject: "system:serviceaccount:" + credsTestNS + ":" + credsTestSA})
	saToken := func(exp time.Time) string {
		tok, err := aks.ServiceAccountToken(credsTestNS, credsTestSA, entraemu.DefaultTokenExchangeAudience, time.Now().Add(-time.Hour), exp)
		if err != nil {
			t.Fatal(err)
		}
		rememberCredential(tok)
		return tok
	}
	// Entra allows 5 minutes of skew: this token is refused 3 seconds from now.
	oldExpiry := time.Now().Add(-5*time.Minute + 3*time.Second)
	old := saToken(oldExpiry)
	vol, err := testenv.NewProjectedToken(t.TempDir(), old)
	if err != nil {
		t.Fatal(err)
	}
	loadConfig(t, siteConfig(errorRoutes+credentialRoute("wi", "client_assertion_file "+vol.Path())))
	t.Cleanup(func() { loadConfig(t, siteConfig(errorRoutes)) })

	before := env.Emu.ClientCredentials(credsAppID)
	if status, body := callAs(t, "wi", freshUser(t)); status != http.StatusOK {
		t.Fatalf("with the first token: %d %v", status, body)
	}
	if err := vol.Write(saToken(time.Now().Add(time.Hour))); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Until(oldExpiry.Add(5*time.Minute + time.Second)))
	if code := emulatorRefuses(t, old); code != 700024 {
		t.Fatalf("the old token is not expired yet for the emulator (AADSTS%d): the test proves nothing", code)
	}
	user := freshUser(t)
	if status, body := callAs(t, "wi", user); status != http.StatusOK || body["oid"] != user.ObjectID {
		t.Fatalf("after rotation: %d %v", status, body)
	}
	after := env.Emu.ClientCredentials(credsAppID)
	if after.FederatedIssuers[aks.URL()] != before.FederatedIssuers[aks.URL()]+2 || after.Secret != before.Secret {
		t.Fatalf("the emulator saw %+v after %+v: want two federated assertions and no secret", after, before)
	}
}

// emulatorRefuses presents a federated token directly (client credentials) and returns the AADSTS code.
func emulatorRefuses(t *testing.T, assertion string) int {
	t.Helper()
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {credsAppID},
		"scope":                 {"https://graph.microsoft.com/.default"},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {assertion}}
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: env.TLSConfig()}, Timeout: 10 * time.Second}
	resp, err := c.PostForm(env.Server.URL+"/"+entraemu.DefaultTenantID+"/oauth2/v2.0/token", form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Codes []int `json:"error_codes"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&body)
	if len(body.Codes) == 0 {
		return 0
	}
	return body.Codes[0]
}

// A managed identity as the app's federated credential, through the App Service style endpoint: one managed
// identity token serves every user.
func TestManagedIdentityTokenIsSharedByAllUsers(t *testing.T) {
	startCaddy(t)
	endpoint, header := env.Emu.ManagedIdentityEndpoint()
	t.Setenv("IDENTITY_ENDPOINT", endpoint)
	t.Setenv("IDENTITY_HEADER", header)
	rememberCredential(header)
	env.Emu.AddFederatedCredential(credsAppID, entraemu.FederatedCredential{Issuer: env.Emu.Issuer(),
		Subject: testManagedIdentity.ObjectID})
	logsBefore := len(caddyLog())
	loadConfig(t, siteConfig(errorRoutes+credentialRoute("mi", "managed_identity "+managedIdentityID)))
	t.Cleanup(func() { loadConfig(t, siteConfig(errorRoutes)) })
	if logs := caddyLog()[logsBefore:]; !strings.Contains(logs, `"source":"AppService"`) || !strings.Contains(logs, `"identity":"`+managedIdentityID+`"`) {
		t.Errorf("the load does not say where managed identity tokens come from")
	}

	before, miBefore, oboBefore := env.Emu.ClientCredentials(credsAppID), env.Emu.ManagedIdentityTokens(managedIdentityID), oboCalls()
	const users = 8
	var wg sync.WaitGroup
	errs := make(chan string, users)
	for range users {
		user := freshUser(t)
		sso := ssoToken(t, user.Key, entraemu.MintOptions{Audience: credsAppID})
		wg.Go(func() {
			req, _ := http.NewRequest(http.MethodGet, siteBase+"/mi"+credsGraphPath, nil)
			req.Header.Set("Authorization", "Bearer "+sso)
			resp, err := env.client.Do(req)
			if err != nil {
				errs <- err.Error()
				return
			}
			defer resp.Body.Close()
			var body map[string]any
			_ = json.NewDecoder(resp.Body).Decode(&body)
			if resp.StatusCode != http.StatusOK || body["oid"] != user.ObjectID {
				errs <- fmt.Sprintf("%s: %d %v", user.Key, resp.StatusCode, body)
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if n := env.Emu.ManagedIdentityTokens(managedIdentityID) - miBefore; n != 1 {
		t.Errorf("%d managed identity tokens for %d users, want 1", n, users)
	}
	if n := oboCalls() - oboBefore; n != users {
		t.Errorf("%d OBO calls, want %d", n, users)
	}
	after := env.Emu.ClientCredentials(credsAppID)
	if after.FederatedIssuers[env.Emu.Issuer()] != before.FederatedIssuers[env.Emu.Issuer()]+users || after.Secret != before.Secret {
		t.Errorf("the emulator saw %+v after %+v: want %d managed identity assertions and no secret", after, before, users)
	}
}
