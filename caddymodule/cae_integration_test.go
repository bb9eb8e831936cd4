package caddymodule_test

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/tokeninjector/caddy-token-injector/internal/dev/entraemu"
	"github.com/tokeninjector/caddy-token-injector/internal/dev/testenv"
)

// The CAE and app-only tests load a config of their own: the global registration declares cp1, in front of a
// recording upstream that keeps each request's body and answers with the emulator's downstream API (which
// enforces CAE revocations), and an upstream that challenges every request.

// bodyUpstream records every request's path, Authorization and body, then lets the downstream API answer.
type bodyUpstream struct {
	api http.Handler
	mu  sync.Mutex
	got []seenRequest
}

type seenRequest struct {
	path, auth string
	body       []byte
}

func (u *bodyUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	u.mu.Lock()
	u.got = append(u.got, seenRequest{r.URL.Path, r.Header.Get("Authorization"), body})
	u.mu.Unlock()
	u.api.ServeHTTP(w, r)
}

// since returns the requests from the n-th on.
func (u *bodyUpstream) since(n int) []seenRequest {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]seenRequest(nil), u.got[n:]...)
}

func (u *bodyUpstream) count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.got)
}

var caeEnv struct {
	once      sync.Once
	upstream  *bodyUpstream
	recording *testenv.Upstream
	always    *testenv.Upstream // challenges every request
	err       error
}

// startCAE loads the cp1 config and returns a client for it.
func startCAE(t *testing.T) *http.Client {
	t.Helper()
	testenv.Integration(t)
	startCAEUpstreams(t)
	loadConfig(t, caeConfig())
	return env.client
}

// startCAEUpstreams starts the upstreams of the CAE tests, once; each test's CAE revocations end with it.
func startCAEUpstreams(t *testing.T) {
	t.Helper()
	caeEnv.once.Do(func() {
		caeEnv.upstream = &bodyUpstream{api: entraemu.NewDownstreamAPI(env.Emu)}
		if caeEnv.recording, caeEnv.err = testenv.StartUpstream(caeEnv.upstream, testenv.UpstreamOptions{}); caeEnv.err != nil {
			return
		}
		challenge := `Bearer realm="", error="insufficient_claims", claims="` +
			base64.StdEncoding.EncodeToString([]byte(`{"access_token":{"nbf":{"essential":true,"value":"1"}}}`)) + `"`
		caeEnv.always, caeEnv.err = testenv.StartUpstream(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("WWW-Authenticate", challenge)
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"error":{"code":"InvalidAuthenticationToken"}}`)
		}), testenv.UpstreamOptions{})
	})
	if caeEnv.err != nil {
		t.Fatal(caeEnv.err)
	}
	t.Cleanup(func() { env.Emu.ClearFaults(); env.Emu.ClearCAE() })
}

// globalOptions is the integration config's global block with the tenant (and registration lines) given.
func globalOptions(tenant, registration string) string {
	return globalBlock(env.logPath, tenant, registration)
}

// globalBlock is the integration config's global block, logging to logPath.
func globalBlock(logPath, tenant, registration string) string {
	return fmt.Sprintf(`{
	https_port %s
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
		%s
	}
}
`, httpsPort, logPath, env.Server.URL, tenant, entraemu.DefaultAddinClientID, entraemu.DefaultAddinIdentifierURI,
		env.CAFile, registration)
}

func caeConfig() string {
	return globalOptions(entraemu.DefaultTenantDomain, "client_capabilities cp1") + fmt.Sprintf(`
%[1]s {
	log {
		output file %[2]s
	}
	token_injector /api/* api://downstream/Data.Read
	token_injector /small/* {
		scopes api://downstream/Data.Read
		retry_body_limit 1024
	}
	token_injector /always/* api://downstream/Data.Read
	token_injector /daemon/* {
		scopes api://downstream/.default
		app_only
	}
	# The same for another resource: each test that counts client credentials grants has its own scope set.
	token_injector /daemon-graph/* {
		scopes https://graph.microsoft.com/.default
		app_only
	}
	# A sidecar's route, here on every interface: the config loads with a warning.
	token_injector /sidecar/* {
		scopes api://downstream/.default
		app_only
		allow_anonymous
	}
	handle /always/* {
		reverse_proxy %[3]s
	}
	reverse_proxy %[4]s
}

# Sessions: the refresh token answers a challenge.
%[5]s {
	@graph path /graph/* /.auth/*
	token_injector @graph {
		scopes api://downstream/Data.Read
		sign_in {
			cookie_secret {env.TOKEN_INJECTOR_TEST_COOKIE_SECRET}
		}
	}
	reverse_proxy %[4]s
}
`, siteBase, env.accessPath, caeEnv.always.Addr, caeEnv.recording.Addr, signInSite)
}

// send makes a request through Caddy and returns the status, headers and body.
func send(t *testing.T, client *http.Client, method, path, bearer string, body io.Reader) (int, http.Header, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, siteBase+path, body)
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, raw
}

func jsonBody(t *testing.T, raw []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("not JSON: %s", raw)
	}
	return m
}

// oboRequestsWithChallenge are the OBO requests the emulator saw from n on that answered a claims challenge.
func oboRequestsWithChallenge(n int) (challenged []entraemu.TokenRequest) {
	for _, r := range env.Emu.TokenRequests()[n:] {
		if r.Grant == entraemu.GrantOBO && r.Challenge {
			challenged = append(challenged, r)
		}
	}
	return challenged
}

func TestCAERevokedUserIsRetriedWithTheClaims(t *testing.T) {
	client := startCAE(t)
	u := freshUser(t)
	sso := ssoToken(t, u.Key, entraemu.MintOptions{})
	if status, _, raw := send(t, client, "GET", "/api/me", sso, nil); status != 200 {
		t.Fatalf("before the revocation: %d %s", status, raw)
	}
	env.Emu.RevokeCAE(u.Key, false)
	reqs, seen := len(env.Emu.TokenRequests()), caeEnv.upstream.count()

	status, hdr, raw := send(t, client, "GET", "/api/me", sso, nil)
	if status != 200 || jsonBody(t, raw)["oid"] != u.ObjectID || hdr.Get("WWW-Authenticate") != "" {
		t.Fatalf("after the revocation: %d %s %v", status, raw, hdr)
	}
	got := caeEnv.upstream.since(seen)
	if len(got) != 2 || got[0].auth == got[1].auth {
		t.Fatalf("%d upstream requests, want the challenged one and its retry with a new token", len(got))
	}
	challenged := oboRequestsWithChallenge(reqs)
	if len(challenged) != 1 || !strings.Contains(challenged[0].Claims, `"nbf"`) || !strings.Contains(challenged[0].Claims, `"xms_cc"`) {
		t.Fatalf("OBO requests with the challenge's claims: %+v", challenged)
	}
	// The new token replaced the cached one: the next request goes straight through.
	if status, _, _ := send(t, client, "GET", "/api/me", sso, nil); status != 200 || caeEnv.upstream.count() != seen+3 {
		t.Fatalf("next request: %d, %d upstream requests", status, caeEnv.upstream.count()-seen)
	}
}

func TestCAERetryReplaysTheBody(t *testing.T) {
	client := startCAE(t)
	u := freshUser(t)
	sso := ssoToken(t, u.Key, entraemu.MintOptions{})
	if status, _, _ := send(t, client, "GET", "/api/me", sso, nil); status != 200 {
		t.Fatal(status)
	}
	env.Emu.RevokeCAE(u.Key, false)
	body := make([]byte, 20<<10)
	_, _ = rand.Read(body)
	// Once with a Content-Length, once chunked (a body of unknown length, within the bound).
	for _, rd := range []io.Reader{bytes.NewReader(body), io.MultiReader(bytes.NewReader(body))} {
		env.Emu.RevokeCAE(u.Key, false)
		seen := caeEnv.upstream.count()
		if status, _, raw := send(t, client, "POST", "/api/items", sso, rd); status != 200 {
			t.Fatalf("POST: %d %s", status, raw)
		}
		got := caeEnv.upstream.since(seen)
		if len(got) != 2 {
			t.Fatalf("%d upstream requests, want 2", len(got))
		}
		for i, g := range got {
			if sha256.Sum256(g.body) != sha256.Sum256(body) {
				t.Fatalf("request %d: the upstream got %d bytes, not the 20 KB sent", i, len(g.body))
			}
		}
	}
}

func TestCAEBodyOverTheBoundIsNotRetriedAndReachesTheUpstreamIntact(t *testing.T) {
	client := startCAE(t)
	u := freshUser(t)
	sso := ssoToken(t, u.Key, entraemu.MintOptions{})
	if status, _, _ := send(t, client, "GET", "/small/me", sso, nil); status != 200 {
		t.Fatal(status)
	}
	body := bytes.Repeat([]byte("0123456789abcdef"), 256) // 4 KiB, over /small's 1 KiB
	for _, rd := range []io.Reader{bytes.NewReader(body), io.MultiReader(bytes.NewReader(body))} {
		env.Emu.RevokeCAE(u.Key, false)
		seen := caeEnv.upstream.count()
		status, hdr, _ := send(t, client, "POST", "/small/items", sso, rd)
		if status != 401 || !strings.Contains(hdr.Get("WWW-Authenticate"), "insufficient_claims") {
			t.Fatalf("the upstream's challenge should reach the client as it is: %d %v", status, hdr)
		}
		got := caeEnv.upstream.since(seen)
		if len(got) != 1 || !bytes.Equal(got[0].body, body) {
			t.Fatalf("%d upstream requests; body intact: %v", len(got), len(got) == 1 && bytes.Equal(got[0].body, body))
		}
		// The proxy got a token for the claims meanwhile: the client's own retry goes through.
		seen = caeEnv.upstream.count()
		if status, _, raw := send(t, client, "POST", "/small/items", sso, bytes.NewReader(body)); status != 200 {
			t.Fatalf("the client's retry: %d %s", status, raw)
		}
		if got := caeEnv.upstream.since(seen); len(got) != 1 || !bytes.Equal(got[0].body, body) {
			t.Fatalf("the client's retry: %d upstream requests", len(got))
		}
	}
}

func TestCAERevokedUserWhoMustDoMFAGetsEntrasClaims(t *testing.T) {
	client := startCAE(t)
	u := freshUser(t)
	sso := ssoToken(t, u.Key, entraemu.MintOptions{})
	if status, _, _ := send(t, client, "GET", "/api/me", sso, nil); status != 200 {
		t.Fatal(status)
	}
	env.Emu.RevokeCAE(u.Key, true)
	status, hdr, raw := send(t, client, "GET", "/api/me", sso, nil)
	body := jsonBody(t, raw)
	claims, _ := body["claims"].(string)
	if status != 401 || body["error"] != "interaction_required" || body["reason"] != "mfa_required" ||
		!strings.Contains(claims, "capolids") || !strings.Contains(hdr.Get("WWW-Authenticate"), "interaction_required") {
		t.Fatalf("got %d %s %v", status, raw, hdr)
	}
}

func TestCAEUpstreamThatKeepsChallengingIsAskedTwice(t *testing.T) {
	client := startCAE(t)
	sso := ssoToken(t, freshUser(t).Key, entraemu.MintOptions{})
	before := caeEnv.always.Requests()
	status, _, raw := send(t, client, "GET", "/always/me", sso, nil)
	body := jsonBody(t, raw)
	if status != 401 || body["error"] != "interaction_required" || body["claims"] != `{"access_token":{"nbf":{"essential":true,"value":"1"}}}` {
		t.Fatalf("got %d %s", status, raw)
	}
	if n := caeEnv.always.Requests() - before; n != 2 {
		t.Fatalf("%d upstream requests, want exactly 2", n)
	}
}

func TestAppOnlyRouteIsOneGrantForEveryone(t *testing.T) {
	client := startCAE(t)
	before := env.Emu.Counters().ByGrant[entraemu.GrantClientCredentials]
	var tokens []string
	for range 5 {
		sso := ssoToken(t, freshUser(t).Key, entraemu.MintOptions{})
		for range 3 {
			status, _, raw := send(t, client, "GET", "/daemon/items", sso, nil)
			body := jsonBody(t, raw)
			if status != 200 || body["roles"] == nil || body["scp"] != nil {
				t.Fatalf("app-only: %d %s", status, raw)
			}
			tokens = append(tokens, body["token_sha256"].(string))
		}
	}
	if n := env.Emu.Counters().ByGrant[entraemu.GrantClientCredentials] - before; n != 1 {
		t.Fatalf("%d client credentials grants for 5 users x 3 requests, want 1", n)
	}
	for _, tok := range tokens {
		if tok != tokens[0] {
			t.Fatal("callers got different app tokens")
		}
	}
	status, hdr, raw := send(t, client, "GET", "/daemon/items", "", nil)
	if status != 401 || jsonBody(t, raw)["error"] != "invalid_token" || !strings.Contains(hdr.Get("WWW-Authenticate"), "invalid_token") {
		t.Fatalf("no caller token: %d %s", status, raw)
	}
}

func TestEveryTokenRequestDeclaresCP1(t *testing.T) {
	client := startCAE(t)
	env.Emu.ResetTokenRequests()
	u := freshUser(t)
	sso := ssoToken(t, u.Key, entraemu.MintOptions{})
	for _, path := range []string{"/api/me", "/daemon-graph/me"} {
		if status, _, raw := send(t, client, "GET", path, sso, nil); status != 200 {
			t.Fatalf("%s: %d %s", path, status, raw)
		}
	}
	env.Emu.RevokeCAE(u.Key, false)
	if status, _, _ := send(t, client, "GET", "/api/me", sso, nil); status != 200 {
		t.Fatal(status)
	}
	reqs := env.Emu.TokenRequests()
	grants := map[string]int{}
	for _, r := range reqs {
		grants[r.Grant]++
	}
	if len(reqs) != 3 || grants[entraemu.GrantOBO] != 2 || grants[entraemu.GrantClientCredentials] != 1 {
		t.Fatalf("%d token requests, want OBO, client credentials and OBO with claims", len(reqs))
	}
	for _, r := range reqs {
		if len(r.Capabilities) != 1 || r.Capabilities[0] != "cp1" {
			t.Fatalf("a %s request without xms_cc cp1: claims %q", r.Grant, r.Claims)
		}
	}
}

func TestAnonymousAppOnlyRouteForwardsTheAppsTokenAndWarnsOffLoopback(t *testing.T) {
	client := startCAE(t)
	status, _, raw := send(t, client, "GET", "/sidecar/items", "", nil)
	if body := jsonBody(t, raw); status != 200 || body["roles"] == nil || body["oid"] == nil {
		t.Fatalf("anonymous app-only: %d %s", status, raw)
	}
	// A caller that does send a token still has it checked.
	if status, _, _ := send(t, client, "GET", "/sidecar/items", tamper(ssoToken(t, "adele", entraemu.MintOptions{})), nil); status != 401 {
		t.Fatalf("a forged caller token on an anonymous route: %d", status)
	}
	if !strings.Contains(readLogs(), "allow_anonymous: an app_only route takes callers without a token on a non-loopback listener") {
		t.Fatal("no warning for allow_anonymous on a listener of every interface")
	}
}

func TestCAESessionIsRetriedWithANewTokenFromItsRefreshToken(t *testing.T) {
	startCAE(t)
	user := freshUser(t)
	b := newBrowser(t)
	requests := len(env.Emu.TokenRequests())
	if status, _, body := b.signIn(signInSite+"/graph/me", user.Key); status != 200 {
		t.Fatalf("sign-in: %d %.300s", status, body)
	}
	env.Emu.RevokeCAE(user.Key, false)
	refreshes, seen := env.Emu.Counters().ByGrant[entraemu.GrantRefreshToken], caeEnv.upstream.count()
	status, _, body := b.api(signInSite + "/graph/me")
	if status != 200 || body["oid"] != user.ObjectID {
		t.Fatalf("after the revocation: %d %v", status, body)
	}
	if n := caeEnv.upstream.count() - seen; n != 2 {
		t.Fatalf("%d upstream requests, want the challenged one and its retry", n)
	}
	if n := env.Emu.Counters().ByGrant[entraemu.GrantRefreshToken] - refreshes; n != 1 {
		t.Fatalf("%d refresh token redemptions, want 1", n)
	}
	// The code redemption and the refresh declared cp1 too.
	for _, r := range env.Emu.TokenRequests()[requests:] {
		if len(r.Capabilities) != 1 || r.Capabilities[0] != "cp1" {
			t.Fatalf("a %s request without xms_cc cp1: claims %q", r.Grant, r.Claims)
		}
	}
}
