package caddymodule_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"

	_ "github.com/tokeninjector/caddy-token-injector/caddymodule"
	"github.com/tokeninjector/caddy-token-injector/internal/dev/entraemu"
)

// The integration tests run one real Caddy (caddytest) with the plugin, in front of a recording upstream, against
// the Entra emulator over HTTPS with a CA generated for the run. MSAL Go talks to the emulator unmodified.

const (
	caddyHTTPPort = 9080
	siteBase      = "http://localhost:9080"
	// signInSite and expiringSite are the sign-in sites; their callbacks are registered in testTenant.
	signInSite   = "http://127.0.0.1:9080"
	expiringSite = "http://localhost:9081"
)

var env struct {
	emu        *entraemu.Emulator
	idp        *entraemu.Server
	caPath     string
	logPath    string
	accessPath string
	upstream   *recordingUpstream
	secret     string
	tlsConfig  *tls.Config // trusts the emulator

	mu          sync.Mutex
	minted      []string // every caller token handed out, for the log check
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

func runWithHarness(m *testing.M) (int, error) {
	dir, err := os.MkdirTemp("", "token-injector-it-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	if env.emu, err = entraemu.New(testTenant()); err != nil {
		return 0, err
	}
	ca, err := entraemu.NewCA()
	if err != nil {
		return 0, err
	}
	env.tlsConfig = &tls.Config{RootCAs: ca.Pool()}
	if env.idp, err = env.emu.Start(entraemu.ListenOptions{CA: ca}); err != nil {
		return 0, err
	}
	defer env.idp.Close()
	env.caPath = filepath.Join(dir, "emulator-ca.pem")
	if err := os.WriteFile(env.caPath, ca.CertPEM(), 0o600); err != nil {
		return 0, err
	}
	env.logPath = filepath.Join(dir, "caddy.log")
	env.accessPath = filepath.Join(dir, "access.log")
	env.upstream = newRecordingUpstream(entraemu.NewDownstreamAPI(env.emu))
	defer env.upstream.Close()
	// The secret reaches Caddy through an {env.*} placeholder, as in production.
	env.secret = entraemu.DefaultAddinSecret
	os.Setenv("TOKEN_INJECTOR_TEST_SECRET", env.secret)
	os.Setenv("TOKEN_INJECTOR_TEST_COOKIE_SECRET", base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef")))

	code := m.Run()
	if code != 0 {
		// Caddy's warnings and errors explain most integration failures.
		for _, line := range strings.Split(readLogs(), "\n") {
			if strings.Contains(line, `"level":"error"`) || strings.Contains(line, `"level":"warn"`) {
				fmt.Fprintln(os.Stderr, "caddy:", line)
			}
		}
	}
	if code == 0 && !testing.Short() {
		if leaks := secretsInLogs(); len(leaks) > 0 {
			fmt.Fprintln(os.Stderr, "FAIL: the logs contain credentials:", strings.Join(leaks, "; "))
			return 1, nil
		}
	}
	return code, nil
}

// siteConfig is the Caddyfile every integration test loads; extra is spliced into the site block.
func siteConfig(extra string) string {
	return fmt.Sprintf(`{
	admin localhost:2999
	http_port %d
	https_port 9443
	skip_install_trust
	log {
		output file %s
		level DEBUG
	}
	token_injector {
		authority_host %s
		tenant %s
		client_id %s
		client_secret {env.TOKEN_INJECTOR_TEST_SECRET}
		audience %s
		tls_trust_pool file %s
		timeout 3s
	}
}

http://localhost:%d {
	log {
		output file %s
	}
	token_injector /graph/* https://graph.microsoft.com/User.Read
	token_injector /api/* api://downstream/Data.Read
	%s
	reverse_proxy %[12]s
}

# Sign-in: the same registration (and cache) as above, with sessions.
%[13]s {
	log {
		output file %[11]s
	}
	@graph path /graph/* /.auth/*
	token_injector @graph {
		scopes https://graph.microsoft.com/User.Read
		allowed_origins https://addin.example.com
		sign_in {
			cookie_secret {env.TOKEN_INJECTOR_TEST_COOKIE_SECRET}
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
		reverse_proxy %[12]s
	}
	# Never consented: incremental consent.
	token_injector /send/* {
		scopes https://graph.microsoft.com/Mail.Send
		sign_in {
			cookie_secret {env.TOKEN_INJECTOR_TEST_COOKIE_SECRET}
		}
	}
	reverse_proxy %[12]s
}

# Sign-in where every access token is as good as expired a second after it is issued: the proxy keeps only
# tokens with more than expiry_margin left, so each request needs the session's refresh token.
%[14]s {
	@graph path /graph/* /.auth/*
	token_injector @graph {
		scopes https://graph.microsoft.com/User.Read
		expiry_margin 59m59s
		sign_in {
			cookie_secret {env.TOKEN_INJECTOR_TEST_COOKIE_SECRET}
		}
	}
	reverse_proxy %[12]s
}
`, caddyHTTPPort, env.logPath, env.idp.URL, entraemu.DefaultTenantDomain, entraemu.DefaultAddinClientID,
		entraemu.DefaultAddinIdentifierURI, env.caPath, caddyHTTPPort, env.accessPath, extra, env.accessPath,
		env.upstream.Listener.Addr(), signInSite, expiringSite)
}

// errorRoutes are routes whose registration or scopes are wrong on purpose.
var errorRoutes = fmt.Sprintf(`route /badsecret/* {
		token_injector {
			scopes https://graph.microsoft.com/User.Read
			client_secret not-the-secret
		}
	}
	route /badapp/* {
		token_injector {
			scopes https://graph.microsoft.com/User.Read
			client_id 99999999-9999-4999-8999-999999999999
			audience %s %s
		}
	}
	route /badscope/* {
		token_injector https://graph.microsoft.com/No.Such.Scope
	}
	route /quick/* {
		token_injector {
			scopes https://graph.microsoft.com/User.Read
			timeout 300ms
		}
	}`, entraemu.DefaultAddinClientID, entraemu.DefaultAddinIdentifierURI)

func startCaddy(t *testing.T) *caddytest.Tester {
	t.Helper()
	tester := caddytest.NewTester(t)
	tester.InitServer(siteConfig(errorRoutes), "caddyfile")
	t.Cleanup(env.emu.ClearFaults)
	return tester
}

// ssoToken mints what Office.auth.getAccessToken would give the add-in for user.
func ssoToken(t testing.TB, user string, o entraemu.MintOptions) string {
	t.Helper()
	tok, err := env.emu.MintAccessToken(user, o)
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
	for i := range cfg.Apps {
		if cfg.Apps[i].ClientID == entraemu.DefaultAddinClientID {
			cfg.Apps[i].RedirectURIs = append(cfg.Apps[i].RedirectURIs, signInSite+"/.auth/callback", expiringSite+"/.auth/callback")
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

func oboCalls() int { return env.emu.Counters().ByGrant["obo"] }

func tokenRequests() int { return env.emu.Counters().TokenRequests }

// recordingUpstream is the API behind Caddy: the emulator's downstream stub, which verifies the token and echoes
// its subject, plus a record of every request's headers.
type recordingUpstream struct {
	*httptest.Server
	mu       sync.Mutex
	requests []http.Header
}

func newRecordingUpstream(api http.Handler) *recordingUpstream {
	u := &recordingUpstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.requests = append(u.requests, r.Header.Clone())
		u.mu.Unlock()
		api.ServeHTTP(w, r)
	}))
	return u
}

func (u *recordingUpstream) seen() []http.Header {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]http.Header(nil), u.requests...)
}

// secretsInLogs returns a description of every credential found in Caddy's logs: the client secret, any caller
// token, any downstream token the upstream received.
func secretsInLogs() []string {
	var logs []byte
	for _, p := range []string{env.logPath, env.accessPath} {
		b, _ := os.ReadFile(p)
		logs = append(logs, b...)
	}
	text := string(logs)
	var leaks []string
	check := func(kind, secret string) {
		if len(secret) > 20 && strings.Contains(text, secret) {
			i := strings.Index(text, secret)
			leaks = append(leaks, kind+" in: "+text[max(0, i-300):i])
		}
		// A JWT's signature alone is a credential fragment worth catching too.
		if i := strings.LastIndexByte(secret, '.'); i > 0 && len(secret)-i > 20 && strings.Contains(text, secret[i+1:]) {
			leaks = append(leaks, kind+" signature")
		}
	}
	check("client secret", env.secret)
	env.mu.Lock()
	for _, tok := range env.minted {
		check("caller token", tok)
	}
	for _, c := range env.credentials {
		check("authorization code or cookie", c)
	}
	env.mu.Unlock()
	for _, h := range env.upstream.seen() {
		check("downstream token", strings.TrimPrefix(h.Get("Authorization"), "Bearer "))
	}
	return leaks
}

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

func readLogs() string {
	var b []byte
	for _, p := range []string{env.logPath, env.accessPath} {
		data, _ := os.ReadFile(p)
		b = append(b, data...)
	}
	return string(b)
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
