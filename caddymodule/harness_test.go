package caddymodule_test

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/tokeninjector/caddy-token-injector/caddymodule"
	"github.com/tokeninjector/caddy-token-injector/internal/dev/entraemu"
	"github.com/tokeninjector/caddy-token-injector/internal/dev/testenv"
)

// The integration tests run one real in-process Caddy (testenv.Caddy) with the plugin, in front of a recording
// upstream, against the Entra emulator over HTTPS with a CA generated for the run (testenv.Env). MSAL Go talks
// to the emulator unmodified. Every port is picked free at start-up: none is a demo's.

var (
	siteBase string // the main site, http://localhost:<port>
	// signInSite and expiringSite are the sign-in sites; their callbacks are registered in testTenant.
	signInSite   string // http://127.0.0.1:<the main site's port>
	expiringSite string // http://localhost:<port>
	httpsPort    string // Caddy's https_port: no site uses it, but it must not be the demo's 9443
)

var env struct {
	*testenv.Env
	caddy      *testenv.Caddy
	client     *http.Client // a plain client for the sites
	logPath    string
	accessPath string
	secret     string
	started    bool // some test loaded Caddy: the logs must then have lines

	mu          sync.Mutex
	minted      []string // every caller token handed out, for the log check
	extraLogs   []string // logs of other caddy processes (replicas), checked too
	credentials []string // authorization codes and cookie values seen by the test browsers
}

func rememberCredential(v string) {
	env.mu.Lock()
	env.credentials = append(env.credentials, v)
	env.mu.Unlock()
}

func TestMain(m *testing.M) {
	code, err := runWithHarness(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "harness:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

// pickPorts chooses the sites' ports.
func pickPorts() error {
	var ports [3]string
	for i := range ports {
		addr, err := testenv.FreeAddr()
		if err != nil {
			return err
		}
		ports[i] = addr[strings.LastIndexByte(addr, ':')+1:]
	}
	siteBase, signInSite = "http://localhost:"+ports[0], "http://127.0.0.1:"+ports[0]
	expiringSite, httpsPort = "http://localhost:"+ports[1], ports[2]
	return nil
}

func runWithHarness(m *testing.M) (int, error) {
	if err := pickPorts(); err != nil {
		return 0, err
	}
	tenant := testTenant()
	var err error
	if env.Env, err = testenv.Start(testenv.Options{Tenant: &tenant}); err != nil {
		return 0, err
	}
	defer env.Close()
	if env.caddy, err = testenv.NewCaddy(filepath.Join(env.Dir, "caddy")); err != nil {
		return 0, err
	}
	defer env.caddy.Stop()
	env.client = &http.Client{Timeout: 30 * time.Second}
	env.logPath = filepath.Join(env.Dir, "caddy.log")
	env.accessPath = filepath.Join(env.Dir, "access.log")
	// The secret reaches Caddy through an {env.*} placeholder, as in production.
	env.secret = entraemu.DefaultAddinSecret
	os.Setenv("TOKEN_INJECTOR_TEST_SECRET", env.secret)
	// A key of the run's own: the repository's published keys sign sessions only for the built-in emulator.
	testCookieKey = make([]byte, 32)
	_, _ = rand.Read(testCookieKey)
	os.Setenv("TOKEN_INJECTOR_TEST_COOKIE_SECRET", base64.StdEncoding.EncodeToString(testCookieKey))

	code := m.Run()
	if code != 0 {
		// Caddy's warnings and errors explain most integration failures.
		for _, line := range strings.Split(readLogs(), "\n") {
			if strings.Contains(line, `"level":"error"`) || strings.Contains(line, `"level":"warn"`) {
				fmt.Fprintln(os.Stderr, "caddy:", line)
			}
		}
	}
	if code == 0 && env.started {
		if err := checkLogs(); err != nil {
			fmt.Fprintln(os.Stderr, "FAIL:", err)
			return 1, nil
		}
	}
	return code, nil
}

// siteConfig is the Caddyfile every integration test loads; extra is spliced into the site block.
func siteConfig(extra string) string {
	return globalOptions(entraemu.DefaultTenantDomain, "") + fmt.Sprintf(`
%s {
	log {
		output file %s
	}
	token_injector /graph/* https://graph.microsoft.com/User.Read
	token_injector /api/* api://downstream/Data.Read
	%s
	reverse_proxy %[5]s
}

# Sign-in: the same registration (and cache) as above, with sessions.
%[6]s {
	log {
		output file %[4]s
	}
	@graph path /graph/* /.auth/*
	token_injector @graph {
		scopes https://graph.microsoft.com/User.Read
		allowed_origins https://addin.example.com
		sign_in {
			cookie_secret {env.TOKEN_INJECTOR_TEST_COOKIE_SECRET}
			login_timeout 2m
		}
	}
	# Pre-consented but not asked for at sign-in: got silently.
	token_injector /mail/* {
		scopes https://graph.microsoft.com/Mail.Read
		sign_in {
			cookie_secret {env.TOKEN_INJECTOR_TEST_COOKIE_SECRET}
		}
	}
	# Behind handle_path, the login URL must still return to the path the client asked for.
	handle_path /stripped/* {
		token_injector {
			scopes https://graph.microsoft.com/User.Read
			sign_in {
				cookie_secret {env.TOKEN_INJECTOR_TEST_COOKIE_SECRET}
			}
		}
		reverse_proxy %[5]s
	}
	# Never consented: incremental consent.
	token_injector /send/* {
		scopes https://graph.microsoft.com/Mail.Send
		sign_in {
			cookie_secret {env.TOKEN_INJECTOR_TEST_COOKIE_SECRET}
		}
	}
	reverse_proxy %[5]s
}

# Sign-in where every access token is as good as expired a second after it is issued: the proxy keeps only
# tokens with more than expiry_margin left, so each request needs the session's refresh token.
%[7]s {
	@graph path /graph/* /.auth/*
	token_injector @graph {
		scopes https://graph.microsoft.com/User.Read
		expiry_margin 59m59s
		sign_in {
			cookie_secret {env.TOKEN_INJECTOR_TEST_COOKIE_SECRET}
		}
	}
	reverse_proxy %[5]s
}
`, siteBase, env.accessPath, extra, env.accessPath,
		env.Upstream.Addr, signInSite, expiringSite)
}

// errorRoutes are routes whose registration or scopes are wrong on purpose.
var errorRoutes = fmt.Sprintf(`route /badsecret/* {
		token_injector {
			scopes https://graph.microsoft.com/User.Read
			client_id %[3]s
			client_secret not-the-secret
			audience %[1]s %[2]s
		}
	}
	route /badapp/* {
		token_injector {
			scopes https://graph.microsoft.com/User.Read
			client_id 99999999-9999-4999-8999-999999999999
			audience %[1]s %[2]s
		}
	}
	route /badscope/* {
		token_injector https://graph.microsoft.com/No.Such.Scope
	}
	route /other-api/* {
		token_injector {
			scopes https://graph.microsoft.com/User.Read
			client_id %[4]s
			client_secret other-api-secret
		}
	}
	route /quick/* {
		token_injector {
			scopes https://graph.microsoft.com/User.Read
			timeout 1s # past it the 2 s fault answers 504; within it a recovered OBO under CI's load (300ms was not)
		}
	}`, entraemu.DefaultAddinClientID, entraemu.DefaultAddinIdentifierURI, secondAppClientID, otherAPIClientID)

// testCookieKey is the sign-in cookie key of the test run (TOKEN_INJECTOR_TEST_COOKIE_SECRET).
var testCookieKey []byte

// rotatedSecret is the add-in app's second client secret, as Entra keeps two during a rotation.
const rotatedSecret = "rotated-dev-secret-not-for-production"

// otherAPIClientID is a second web API of the tenant, with a route of its own: its callers' tokens and the
// add-in API's must not be accepted by each other's routes.
const (
	otherAPIClientID = "a91a0000-0000-4000-8000-000000000004"
	otherAPIURI      = "api://other-api.example/" + otherAPIClientID
)

// secondAppClientID is a confidential app of the test tenant that no route knows the secret of.
const secondAppClientID = "5ec0dd00-0000-4000-8000-000000000002"

// startCaddy runs the integration config (a no-op when it runs already) and returns a client for the sites.
func startCaddy(t *testing.T) *http.Client {
	t.Helper()
	loadConfig(t, siteConfig(errorRoutes))
	t.Cleanup(env.Emu.ClearFaults)
	return env.client
}

// loadConfig runs a Caddyfile, as `caddy reload` would when another one runs.
func loadConfig(t *testing.T, caddyfile string) {
	t.Helper()
	testenv.Integration(t)
	if err := env.caddy.LoadCaddyfile(caddyfile); err != nil {
		t.Fatal(err)
	}
	env.started = true
}

// ssoToken mints what Office.auth.getAccessToken would give the add-in for user.
func ssoToken(t testing.TB, user string, o entraemu.MintOptions) string {
	t.Helper()
	tok, err := env.Emu.MintAccessToken(user, o)
	if err != nil {
		t.Fatal(err)
	}
	env.mu.Lock()
	env.minted = append(env.minted, tok)
	env.mu.Unlock()
	return tok
}

// testTenant is the demo tenant plus numbered users, so that each test case can start with a user whose tokens are
// not cached yet.
func testTenant() entraemu.Config {
	cfg := entraemu.DefaultConfig()
	testenv.AddRedirectURIs(&cfg, signInSite+"/.auth/callback", expiringSite+"/.auth/callback")
	cfg.Apps = append(cfg.Apps, entraemu.App{ClientID: secondAppClientID, Secret: "second-app-secret", Name: "second-api"},
		entraemu.App{ClientID: otherAPIClientID, Secret: "other-api-secret", Name: "other-api",
			IdentifierURIs: []string{otherAPIURI}, ExposedScopes: []string{"access_as_user"}, PreConsented: true,
			AccessTokenVersion:  2, // aud is the client id, which the route accepts without an audience setting
			RequiredPermissions: map[string][]string{"https://graph.microsoft.com": {"User.Read"}}})
	cfg.Apps = append(cfg.Apps, credentialsApp())
	cfg.ManagedIdentities = append(cfg.ManagedIdentities, testManagedIdentity)
	for i := range cfg.Apps {
		if cfg.Apps[i].ClientID == entraemu.DefaultAddinClientID {
			cfg.Apps[i].OtherSecrets = []string{rotatedSecret} // the secret a reload rotates to
		}
	}
	for i := range 100 {
		key := fmt.Sprintf("user%02d", i)
		cfg.Users = append(cfg.Users, entraemu.User{Key: key, ObjectID: fmt.Sprintf("7e570000-0000-4000-8000-%012d", i),
			UPN: key + "@" + entraemu.DefaultTenantDomain, Name: "Test User " + key})
	}
	return cfg
}

var nextUser struct {
	sync.Mutex
	n int
}

// freshUser returns a test user no other test has used.
func freshUser(t testing.TB) entraemu.User {
	nextUser.Lock()
	defer nextUser.Unlock()
	nextUser.n++
	return userByKey(t, fmt.Sprintf("user%02d", nextUser.n))
}

func userByKey(t testing.TB, key string) entraemu.User {
	for _, u := range testTenant().Users {
		if u.Key == key {
			return u
		}
	}
	t.Fatalf("no user %s", key)
	return entraemu.User{}
}

// call sends a request through Caddy with the bearer token and returns the status, headers and decoded JSON body.
func call(t testing.TB, client *http.Client, path, bearer string) (int, http.Header, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, siteBase+path, nil)
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var body map[string]any
	if len(raw) > 0 && json.Unmarshal(raw, &body) != nil {
		t.Fatalf("%s: status %d, body is not JSON: %s", path, resp.StatusCode, raw)
	}
	return resp.StatusCode, resp.Header, body
}

func oboCalls() int { return env.Emu.Counters().ByGrant[entraemu.GrantOBO] }

func tokenRequests() int { return env.Emu.Counters().TokenRequests }

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// tamper changes a claim of a signed token and keeps the old signature.
func tamper(tok string) string {
	parts := strings.Split(tok, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var claims map[string]any
	_ = json.Unmarshal(payload, &claims)
	claims["name"] = "Mallory"
	payload, _ = json.Marshal(claims)
	return parts[0] + "." + base64.RawURLEncoding.EncodeToString(payload) + "." + parts[2]
}

// withAlg re-signs a token's claims with another algorithm: "none" (no signature) or an HMAC with key.
func withAlg(tok, alg, key string) string {
	parts := strings.Split(tok, ".")
	header, _ := json.Marshal(map[string]string{"alg": alg, "typ": "JWT"})
	signed := base64.RawURLEncoding.EncodeToString(header) + "." + parts[1]
	if alg == "none" {
		return signed + "."
	}
	mac := hmac.New(sha256.New, []byte(key))
	mac.Write([]byte(signed))
	return signed + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}
