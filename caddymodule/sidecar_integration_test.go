package caddymodule_test

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/tokeninjector/caddy-token-injector/internal/dev/entraemu"
	"github.com/tokeninjector/caddy-token-injector/internal/dev/testenv"
)

// The sidecar endpoints against the emulator, through a real Caddy. The JSON shapes are the Entra auth sidecar's
// (AzureAD/microsoft-identity-web, src/Microsoft.Identity.Web.Sidecar): Models/AuthorizationHeaderResult.cs,
// Models/ValidateAuthorizationHeaderResult.cs, and ASP.NET Core problem details for refusals
// (Endpoints/AuthorizationHeaderEndpoint.cs).

var sidecarSites struct {
	once      sync.Once
	port      string // loopback callers only
	openPort  string // also callers of openNet
	probePort string // token_injector_health routes
	openNet   string // a non-loopback address of this machine, as a /32 (or /128), if it has one
	peerIP    string // that address
	upstream  *httptest.Server
	lastPaths chan string
}

// sidecarConfig is the integration config plus two sidecar sites on the global registration.
func sidecarConfig(t *testing.T) string {
	t.Helper()
	s := &sidecarSites
	s.once.Do(func() {
		for _, p := range []*string{&s.port, &s.openPort, &s.probePort} {
			addr, err := testenv.FreeAddr()
			if err != nil {
				t.Fatal(err)
			}
			*p = addr[strings.LastIndexByte(addr, ':')+1:]
		}
		s.peerIP = nonLoopbackIP()
		s.openNet = "192.0.2.255/32" // a documentation address: nobody
		if s.peerIP != "" {
			bits := 32
			if strings.Contains(s.peerIP, ":") {
				bits = 128
			}
			s.openNet = fmt.Sprintf("%s/%d", s.peerIP, bits)
		}
		// The emulator's downstream API, which verifies the token, plus the path and credentials it was sent.
		s.lastPaths = make(chan string, 100)
		api := entraemu.NewDownstreamAPI(env.Emu)
		s.upstream = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Seen-Path", r.URL.RequestURI())
			w.Header().Set("X-Seen-Cookie", r.Header.Get("Cookie"))
			api.ServeHTTP(w, r)
		}))
	})
	sidecar := func(port, extra string) string {
		return fmt.Sprintf(`
http://:%s {
	token_injector_sidecar {
		api graph https://graph.microsoft.com/User.Read {
			base_url %s/v1.0
		}
		api graphapp https://graph.microsoft.com/.default {
			app_token
		}
		api_list "downstream api://downstream/Data.Read; downstreamapp app_token api://downstream/.default"
		transparent
		%s
	}
}
`, port, s.upstream.URL, extra)
	}
	probes := fmt.Sprintf(`
http://127.0.0.1:%s {
	handle /livez {
		token_injector_health live
	}
	handle /readyz {
		token_injector_health ready
	}
	handle /readyz-unknown-tenant {
		token_injector_health ready {
			tenant nosuch.onmicrosoft.com
		}
	}
}
`, s.probePort)
	return siteConfig(errorRoutes) + sidecar(s.port, "") + sidecar(s.openPort, "allowed_networks "+s.openNet) + probes
}

func startSidecar(t *testing.T) {
	t.Helper()
	startCaddy(t)
	loadConfig(t, sidecarConfig(t))
}

// nonLoopbackIP is an address of this machine other than loopback, or "".
func nonLoopbackIP() string {
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && !n.IP.IsLinkLocalUnicast() && n.IP.To4() != nil {
			return n.IP.String()
		}
	}
	return ""
}

type sidecarAnswer struct {
	status int
	header http.Header
	raw    []byte
	body   map[string]any
}

func sidecarGet(t testing.TB, base, path, bearer string) sidecarAnswer {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+path, nil)
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	req.Header.Set("Cookie", "app_session=secret-cookie")
	resp, err := env.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	a := sidecarAnswer{status: resp.StatusCode, header: resp.Header}
	a.raw, _ = io.ReadAll(resp.Body)
	if len(a.raw) > 0 && strings.Contains(resp.Header.Get("Content-Type"), "json") {
		if err := json.Unmarshal(a.raw, &a.body); err != nil {
			t.Fatalf("%s: body is not JSON: %s", path, a.raw)
		}
	}
	return a
}

func sidecarBase() string { return "http://127.0.0.1:" + sidecarSites.port }

// jwtClaims decodes a token's payload (the emulator signed it; the downstream API stub verifies signatures).
func jwtClaims(t testing.TB, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %d parts", len(parts))
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// headerToken checks an AuthorizationHeaderResult body: exactly {"authorizationHeader":"Bearer <jwt>"}.
func headerToken(t testing.TB, a sidecarAnswer) map[string]any {
	t.Helper()
	if a.status != 200 || len(a.body) != 1 {
		t.Fatalf("got %d %s, want 200 with only authorizationHeader", a.status, a.raw)
	}
	h, _ := a.body["authorizationHeader"].(string)
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok {
		t.Fatalf("authorizationHeader = %.20q...", h)
	}
	if a.header.Get("Cache-Control") != "no-cache, no-store, must-revalidate" || a.header.Get("Pragma") != "no-cache" {
		t.Errorf("caching headers %v, want CacheControl.cs's", a.header)
	}
	return jwtClaims(t, tok)
}

func TestSidecarAuthorizationHeaderIsOBOForTheCaller(t *testing.T) {
	startSidecar(t)
	u := freshUser(t)
	sso := ssoToken(t, u.Key, entraemu.MintOptions{})
	before := oboCalls()
	for range 5 {
		c := headerToken(t, sidecarGet(t, sidecarBase(), "/AuthorizationHeader/graph", sso))
		if c["oid"] != u.ObjectID || c["aud"] != entraemu.GraphURI || !strings.HasPrefix(fmt.Sprint(c["scp"]), "User.Read") {
			t.Fatalf("claims %v", c)
		}
	}
	if n := oboCalls() - before; n != 1 {
		t.Fatalf("%d OBO calls for 5 requests, want 1", n)
	}
	// The query overrides of sidecar clients: other scopes, or the app's token.
	c := headerToken(t, sidecarGet(t, sidecarBase(), "/AuthorizationHeader/graph?optionsOverride.Scopes=api://downstream/Data.Read", sso))
	if c["aud"] != entraemu.DefaultDownstreamAppID || c["oid"] != u.ObjectID {
		t.Fatalf("scopes override: claims %v", c)
	}
	c = headerToken(t, sidecarGet(t, sidecarBase(), "/AuthorizationHeader/graph?optionsOverride.RequestAppToken=true&optionsOverride.Scopes=https://graph.microsoft.com/.default", sso))
	if c["idtyp"] != "app" || c["oid"] == u.ObjectID {
		t.Fatalf("RequestAppToken override: claims %v", c)
	}
	// Without a valid caller, nothing reaches Entra.
	before = tokenRequests()
	for _, bearer := range []string{"", tamper(sso)} {
		if a := sidecarGet(t, sidecarBase(), "/AuthorizationHeader/graph", bearer); a.status != 401 || a.body["error"] != "invalid_token" {
			t.Fatalf("caller %.10q: %d %s, want 401 invalid_token", bearer, a.status, a.raw)
		}
	}
	if n := tokenRequests() - before; n != 0 {
		t.Fatalf("%d token requests for invalid callers", n)
	}
}

func TestSidecarUnauthenticatedMakesOneClientCredentialsCall(t *testing.T) {
	startSidecar(t)
	cc := func() int { return env.Emu.Counters().ByGrant[entraemu.GrantClientCredentials] }
	before := cc()
	var wg sync.WaitGroup
	headers := make([]string, 40)
	for i := range headers {
		wg.Go(func() {
			a := sidecarGet(t, sidecarBase(), "/AuthorizationHeaderUnauthenticated/downstreamapp", "")
			if c := headerToken(t, a); c["idtyp"] != "app" || c["aud"] != entraemu.DefaultDownstreamAppID {
				t.Errorf("claims %v", c)
			}
			headers[i], _ = a.body["authorizationHeader"].(string)
		})
	}
	wg.Wait()
	for range 10 {
		headerToken(t, sidecarGet(t, sidecarBase(), "/AuthorizationHeaderUnauthenticated/downstreamapp", ""))
	}
	if n := cc() - before; n != 1 {
		t.Fatalf("%d client-credentials calls for 50 requests, want 1", n)
	}
	for _, h := range headers {
		if h != headers[0] {
			t.Fatal("concurrent requests got different tokens")
		}
	}
	// Overrides are off on this endpoint by default, as in the Entra sidecar: ignored, not an error.
	c := headerToken(t, sidecarGet(t, sidecarBase(), "/AuthorizationHeaderUnauthenticated/downstreamapp?optionsOverride.Scopes=https://graph.microsoft.com/.default", ""))
	if c["aud"] != entraemu.DefaultDownstreamAppID {
		t.Fatalf("an override was applied although not allowed: aud %v", c["aud"])
	}
	if n := cc() - before; n != 1 {
		t.Fatalf("%d client-credentials calls, want still 1", n)
	}
}

func TestSidecarMFAIsA401ThatKeepsTheClaims(t *testing.T) {
	startSidecar(t)
	u := freshUser(t)
	env.Emu.SetFault(u.Key, entraemu.Fault{Kind: entraemu.FaultMFARequired})
	a := sidecarGet(t, sidecarBase(), "/AuthorizationHeader/graph", ssoToken(t, u.Key, entraemu.MintOptions{}))
	if a.status != 401 || a.header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("got %d %s %s, want a 401 problem", a.status, a.header.Get("Content-Type"), a.raw)
	}
	// The Entra sidecar's members (TypedResults.Problem) ...
	if a.body["status"] != float64(401) || a.body["title"] != "Unauthorized" || a.body["detail"] == "" ||
		a.body["type"] != "https://tools.ietf.org/html/rfc9110#section-15.5.2" {
		t.Errorf("problem details %s", a.raw)
	}
	// ... and what it loses: the claims challenge, in the body and the challenge header.
	claims, _ := a.body["claims"].(string)
	if a.body["error"] != "interaction_required" || a.body["reason"] != "mfa_required" || !strings.Contains(claims, "capolids") {
		t.Errorf("contract members %s", a.raw)
	}
	if ch := a.header.Get("WWW-Authenticate"); !strings.Contains(ch, "claims=\""+base64.StdEncoding.EncodeToString([]byte(claims))+"\"") {
		t.Errorf("WWW-Authenticate %q lacks the claims", ch)
	}
}

func TestSidecarThrottlingKeepsRetryAfter(t *testing.T) {
	startSidecar(t)
	u := freshUser(t)
	env.Emu.SetFault(u.Key, entraemu.Fault{Kind: entraemu.FaultThrottled, RetryAfter: 9e9})
	a := sidecarGet(t, sidecarBase(), "/AuthorizationHeader/graph", ssoToken(t, u.Key, entraemu.MintOptions{}))
	if a.status != 503 || a.body["error"] != "temporarily_unavailable" || a.header.Get("Retry-After") != "9" || a.body["retry_after"] != float64(9) {
		t.Fatalf("got %d Retry-After %q %s, want 503 with Retry-After 9", a.status, a.header.Get("Retry-After"), a.raw)
	}
}

func TestSidecarValidateReturnsTheCallersClaims(t *testing.T) {
	startSidecar(t)
	u := freshUser(t)
	sso := ssoToken(t, u.Key, entraemu.MintOptions{})
	a := sidecarGet(t, sidecarBase(), "/Validate", sso)
	claims, _ := a.body["claims"].(map[string]any)
	if a.status != 200 || a.body["protocol"] != "Bearer" || a.body["token"] != sso || claims["oid"] != u.ObjectID || len(a.body) != 3 {
		t.Fatalf("got %d %.200s", a.status, a.raw)
	}
	if a := sidecarGet(t, sidecarBase(), "/Validate", tamper(sso)); a.status != 401 || a.body["error"] != "invalid_token" {
		t.Fatalf("tampered token: %d %s", a.status, a.raw)
	}
}

func TestSidecarBadRequests(t *testing.T) {
	startSidecar(t)
	sso := ssoToken(t, freshUser(t).Key, entraemu.MintOptions{})
	tests := []struct {
		path   string
		status int
		detail string
	}{
		// Endpoints/AuthorizationHeaderEndpoint.cs's words for an unknown API.
		{"/AuthorizationHeader/nope", 400, "Not able to resolve 'nope'."},
		{"/AuthorizationHeaderUnauthenticated/nope", 400, "Not able to resolve 'nope'."},
		{"/AuthorizationHeader/graph?optionsOverride.AcquireTokenOptions.PopPublicKey=x", 400, "optionsOverride.AcquireTokenOptions.PopPublicKey is not supported by this sidecar"},
		{"/AuthorizationHeader/graph?optionsOverride.AcquireTokenOptions.Tenant=common", 400, ""},
		{"/AuthorizationHeader/graph?AgentIdentity=x", 400, "AgentIdentity: agent identities are not supported"},
		{"/nope/x", 404, ""},
		{"/downstream/x", 404, ""}, // an API without base_url is not proxied
	}
	for _, tt := range tests {
		a := sidecarGet(t, sidecarBase(), tt.path, sso)
		if a.status != tt.status || a.body["status"] != float64(tt.status) || (tt.detail != "" && a.body["detail"] != tt.detail) {
			t.Errorf("%s: %d %s, want %d %q", tt.path, a.status, a.raw, tt.status, tt.detail)
		}
	}
}

func TestSidecarTransparentModeInjectsTheToken(t *testing.T) {
	startSidecar(t)
	u := freshUser(t)
	sso := ssoToken(t, u.Key, entraemu.MintOptions{})
	a := sidecarGet(t, sidecarBase(), "/graph/me/messages?$top=2", sso)
	if a.status != 200 || a.body["oid"] != u.ObjectID || a.body["aud"] != entraemu.GraphURI {
		t.Fatalf("got %d %s", a.status, a.raw)
	}
	if p := a.header.Get("X-Seen-Path"); p != "/v1.0/me/messages?$top=2" {
		t.Errorf("upstream path %q", p)
	}
	if c := a.header.Get("X-Seen-Cookie"); c != "" {
		t.Errorf("the caller's cookie reached the upstream: %q", c)
	}
	// Dot segments do not leave the base path.
	if a := sidecarGet(t, sidecarBase(), "/graph/../../beta/me", sso); a.header.Get("X-Seen-Path") != "/v1.0/beta/me" {
		t.Errorf("dot segments: upstream path %q", a.header.Get("X-Seen-Path"))
	}
	if a := sidecarGet(t, sidecarBase(), "/graph/me", ""); a.status != 401 {
		t.Errorf("no caller token: %d", a.status)
	}
}

func TestSidecarHealthAndReadiness(t *testing.T) {
	startSidecar(t)
	a := sidecarGet(t, sidecarBase(), "/healthz", "")
	if a.status != 200 || string(a.raw) != "Healthy" {
		t.Fatalf("/healthz: %d %q", a.status, a.raw)
	}
	a = sidecarGet(t, sidecarBase(), "/readyz", "")
	checks, _ := a.body["checks"].(map[string]any)
	if a.status != 200 || a.body["status"] != "Healthy" || checks["signing_keys"] != "ok" || checks["entra"] != "ok" {
		t.Fatalf("/readyz: %d %s", a.status, a.raw)
	}
}

// A caller that is not on loopback is refused with 403, as by the Entra sidecar's LocalCallerRestriction, except
// for the health probes and on a sidecar that allows its network.
func TestSidecarRefusesNonLoopbackCallersUnlessAllowed(t *testing.T) {
	startSidecar(t)
	if sidecarSites.peerIP == "" {
		testenv.SkipUnlessAllowed(t, "this machine has no non-loopback IPv4 address to call from")
	}
	sso := ssoToken(t, freshUser(t).Key, entraemu.MintOptions{})
	remote := "http://" + net.JoinHostPort(sidecarSites.peerIP, sidecarSites.port)
	before := tokenRequests()
	for _, path := range []string{"/AuthorizationHeader/graph", "/AuthorizationHeaderUnauthenticated/graphapp", "/Validate", "/graph/me"} {
		if a := sidecarGet(t, remote, path, sso); a.status != 403 || a.body["error"] != "access_denied" {
			t.Errorf("%s from %s: %d %s, want 403", path, sidecarSites.peerIP, a.status, a.raw)
		}
	}
	if n := tokenRequests() - before; n != 0 {
		t.Errorf("%d token requests for refused callers", n)
	}
	if a := sidecarGet(t, remote, "/healthz", ""); a.status != 200 {
		t.Errorf("/healthz from %s: %d", sidecarSites.peerIP, a.status)
	}
	open := "http://" + net.JoinHostPort(sidecarSites.peerIP, sidecarSites.openPort)
	headerToken(t, sidecarGet(t, open, "/AuthorizationHeader/graph", sso))
}

// The probes for a deployment with the token_injector directive: live, ready, and not ready when the
// registration cannot get its signing keys (an unknown tenant).
func TestHealthDirective(t *testing.T) {
	startSidecar(t)
	base := "http://127.0.0.1:" + sidecarSites.probePort
	if a := sidecarGet(t, base, "/livez", ""); a.status != 200 || string(a.raw) != "Healthy" {
		t.Fatalf("/livez: %d %q", a.status, a.raw)
	}
	if a := sidecarGet(t, base, "/readyz", ""); a.status != 200 || a.body["status"] != "Healthy" {
		t.Fatalf("/readyz: %d %s", a.status, a.raw)
	}
	a := sidecarGet(t, base, "/readyz-unknown-tenant", "")
	checks, _ := a.body["checks"].(map[string]any)
	if a.status != 503 || a.body["status"] != "Unhealthy" || checks["signing_keys"] == "ok" || checks["entra"] != "ok" {
		t.Fatalf("unknown tenant: %d %s, want 503 with signing_keys failing and Entra reachable", a.status, a.raw)
	}
}

// With the redis tier, readiness includes Redis: ready while it answers, 503 naming it once it is gone.
func TestReadinessFollowsRedis(t *testing.T) {
	startSidecar(t)
	srv := testenv.StartRedis(t)
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	rememberCredential(base64.StdEncoding.EncodeToString(key))
	t.Setenv("TOKEN_INJECTOR_TEST_REDIS_URL", srv.URL)
	t.Setenv("TOKEN_INJECTOR_TEST_REDIS_KEY", base64.StdEncoding.EncodeToString(key))
	port := sidecarSites.probePort
	loadConfig(t, redisConfig(signInSite, "TOKEN_INJECTOR_TEST_REDIS_KEY", env.logPath, env.accessPath)+
		fmt.Sprintf("\nhttp://127.0.0.1:%s {\n\ttoken_injector_health ready\n}\n", port))
	t.Cleanup(func() { loadConfig(t, siteConfig(errorRoutes)) })
	base := "http://127.0.0.1:" + port
	a := sidecarGet(t, base, "/", "")
	checks, _ := a.body["checks"].(map[string]any)
	if a.status != 200 || checks["redis"] != "ok" {
		t.Fatalf("with Redis up: %d %s", a.status, a.raw)
	}
	srv.Kill()
	a = sidecarGet(t, base, "/", "")
	checks, _ = a.body["checks"].(map[string]any)
	if a.status != 503 || checks["redis"] == "ok" || checks["redis"] == nil || checks["signing_keys"] != "ok" {
		t.Fatalf("with Redis gone: %d %s, want 503 naming redis", a.status, a.raw)
	}
}
