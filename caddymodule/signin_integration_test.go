package caddymodule_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokeninjector/caddy-token-injector/internal/dev/entraemu"
	"github.com/tokeninjector/caddy-token-injector/internal/dev/testenv"
	"github.com/tokeninjector/caddy-token-injector/internal/session"
)

// browser is testenv's browser with the test's failure handling, remembering every authorization code and
// cookie it sees for the log check.
type browser struct {
	t *testing.T
	*testenv.Browser
	client *http.Client
}

func newBrowser(t *testing.T) *browser { return newBrowserSeeing(t, nil) }

// newBrowserSeeing is newBrowser whose redirects seen also go to onRedirect, before they are followed.
func newBrowserSeeing(t *testing.T, onRedirect func(*http.Request)) *browser {
	b := env.NewBrowser(testenv.BrowserOptions{OnRedirect: func(req *http.Request) {
		if code := req.URL.Query().Get("code"); code != "" {
			rememberCredential(code) // the log check looks for every authorization code
		}
		if onRedirect != nil {
			onRedirect(req)
		}
	}})
	b.Client.Timeout = 15 * time.Second
	t.Cleanup(func() {
		for _, site := range []string{signInSite, expiringSite} {
			for _, c := range b.Cookies(site) {
				rememberCredential(c.Value)
			}
		}
	})
	return &browser{t: t, Browser: b, client: b.Client}
}

// navigate GETs url as a top-level navigation and follows redirects; it returns the final response's status,
// URL and body.
func (b *browser) navigate(rawURL string) (int, *url.URL, []byte) {
	return b.must(b.Navigate(rawURL))
}

// api GETs url as a script's fetch would.
func (b *browser) api(rawURL string) (int, http.Header, map[string]any) {
	page, err := b.Fetch(rawURL)
	if err != nil {
		b.t.Fatal(err)
	}
	body, err := page.JSON()
	if err != nil {
		b.t.Fatal(err)
	}
	return page.Status, page.Header, body
}

// signedIn starts the integration config and signs a fresh user in on site with a new browser.
func signedIn(t *testing.T, site string) (entraemu.User, *browser) {
	t.Helper()
	startCaddy(t)
	user := freshUser(t)
	b := newBrowser(t)
	if status, _, body := b.signIn(site+"/graph/me", user.Key); status != 200 {
		t.Fatalf("sign-in: %d %.300s", status, body)
	}
	return user, b
}

// signIn navigates to start, picks user on the emulator's page, and returns where the browser ends up.
func (b *browser) signIn(start, user string) (int, *url.URL, []byte) {
	return b.must(b.SignIn(start, user))
}

func (b *browser) must(page *testenv.Page, err error) (int, *url.URL, []byte) {
	b.t.Helper()
	if err != nil {
		b.t.Fatal(err)
	}
	return page.Status, page.URL, page.Body
}

func (b *browser) cookie(site, name string) *http.Cookie { return b.Cookie(site, name) }

func TestSignInFlowThroughTheEmulator(t *testing.T) {
	startCaddy(t)
	user := freshUser(t)
	b := newBrowser(t)
	before := tokenRequests()

	status, at, body := b.signIn(signInSite+"/graph/me?x=1", user.Key)
	var echo map[string]any
	if status != 200 || json.Unmarshal(body, &echo) != nil || echo["oid"] != user.ObjectID {
		t.Fatalf("after sign-in: %d at %s: %.3000s", status, at, body)
	}
	if at.String() != signInSite+"/graph/me?x=1" {
		t.Fatalf("returned to %s, want the original URL", at)
	}
	if n := tokenRequests() - before; n != 1 {
		t.Fatalf("%d token requests for the sign-in, want 1 (the code redemption)", n)
	}
	// Later API calls use the session and the cached token: no identity-provider call.
	for range 5 {
		if status, _, body := b.api(signInSite + "/graph/me"); status != 200 || body["oid"] != user.ObjectID {
			t.Fatalf("API call with the session: %d %v", status, body)
		}
	}
	if n := tokenRequests() - before; n != 1 {
		t.Fatalf("%d token requests, want none after the sign-in", n-1)
	}
	// A pre-consented scope the sign-in did not ask for is got silently with the refresh token.
	if status, _, body := b.api(signInSite + "/mail/inbox"); status != 200 || !strings.Contains(body["scp"].(string), "Mail.Read") {
		t.Fatalf("silent incremental scope: %d %v", status, body)
	}
	// The session cookie and the caller's credentials never reach the upstream.
	for _, h := range env.Upstream.Seen() {
		if strings.Contains(h.Get("Cookie"), "token_injector") {
			t.Fatal("the session cookie reached the upstream")
		}
	}
}

// The route's login_timeout is the pre-login cookie's lifetime: the time the user has at Entra.
func TestLoginTimeoutBoundsThePreLoginCookie(t *testing.T) {
	startCaddy(t)
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(signInSite + "/.auth/login?return_to=%2Fgraph%2Fme")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cookies := resp.Cookies()
	if resp.StatusCode != http.StatusFound || len(cookies) == 0 {
		t.Fatalf("%d, cookies %d", resp.StatusCode, len(cookies))
	}
	for _, c := range cookies {
		rememberCredential(c.Value)
	}
	if c := cookies[len(cookies)-1]; c.MaxAge != 120 {
		t.Errorf("pre-login cookie %s lives %d s, want the 2m login_timeout", c.Name, c.MaxAge)
	}
}

func TestNoSessionAnswers(t *testing.T) {
	startCaddy(t)
	b := newBrowser(t)
	// A script gets the 401 contract with a login URL.
	status, h, body := b.api(signInSite + "/graph/me")
	if status != 401 || body["error"] != "interaction_required" || body["reason"] != "login_required" {
		t.Fatalf("%d %v", status, body)
	}
	loginURL, _ := body["login_url"].(string)
	if !strings.HasPrefix(loginURL, "/.auth/login?") || !strings.Contains(loginURL, "return_to=%2Fgraph%2Fme") {
		t.Fatalf("login_url %q", loginURL)
	}
	if _, _, body := b.api(signInSite + "/stripped/me?q=1"); !strings.Contains(body["login_url"].(string), "return_to=%2Fstripped%2Fme%3Fq%3D1") {
		t.Fatalf("behind handle_path: login_url %q", body["login_url"])
	}
	if !strings.Contains(h.Get("WWW-Authenticate"), `error="interaction_required"`) {
		t.Fatalf("WWW-Authenticate %q", h.Get("WWW-Authenticate"))
	}
	// A navigation is sent to sign in.
	b.client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	req, _ := http.NewRequest(http.MethodGet, signInSite+"/graph/me", nil)
	req.Header.Set("Accept", "text/html")
	resp, err := b.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 302 || !strings.HasPrefix(resp.Header.Get("Location"), "/.auth/login?") {
		t.Fatalf("navigation: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
}

func TestCrossOriginCallsGetReadableAnswers(t *testing.T) {
	startCaddy(t)
	pre, _ := http.NewRequest(http.MethodOptions, signInSite+"/graph/me", nil)
	pre.Header.Set("Origin", "https://addin.example.com")
	pre.Header.Set("Access-Control-Request-Method", "GET")
	pre.Header.Set("Access-Control-Request-Headers", "authorization")
	resp, err := http.DefaultClient.Do(pre)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 204 || resp.Header.Get("Access-Control-Allow-Origin") != "https://addin.example.com" {
		t.Fatalf("preflight: %d %v", resp.StatusCode, resp.Header)
	}
	get, _ := http.NewRequest(http.MethodGet, signInSite+"/graph/me", nil)
	get.Header.Set("Origin", "https://addin.example.com")
	resp, err = http.DefaultClient.Do(get)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 || resp.Header.Get("Access-Control-Allow-Origin") != "https://addin.example.com" ||
		!strings.Contains(resp.Header.Get("Access-Control-Expose-Headers"), "WWW-Authenticate") {
		t.Fatalf("cross-origin 401: %d %v", resp.StatusCode, resp.Header)
	}
	get.Header.Set("Origin", "https://evil.example")
	resp, _ = http.DefaultClient.Do(get)
	resp.Body.Close()
	if resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatal("an unlisted origin got CORS headers")
	}
}

func TestConcurrentRequestsWithExpiredTokenRedeemRefreshTokenOnce(t *testing.T) {
	startCaddy(t)
	user := freshUser(t)
	b := newBrowser(t)
	if status, _, body := b.signIn(expiringSite+"/graph/me", user.Key); status != 200 {
		t.Fatalf("sign-in: %d %.300s", status, body)
	}
	time.Sleep(1100 * time.Millisecond) // the access token is now within expiry_margin: unusable
	before := env.Emu.Counters().ByUserGrant[user.Key]["refresh_token"]
	var wg sync.WaitGroup
	var mu sync.Mutex
	failed := 0
	for range 30 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			status, _, body := b.api(expiringSite + "/graph/me")
			if status != 200 || body["oid"] != user.ObjectID {
				mu.Lock()
				failed++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if failed > 0 {
		t.Fatalf("%d of 30 requests failed", failed)
	}
	if n := env.Emu.Counters().ByUserGrant[user.Key]["refresh_token"] - before; n != 1 {
		t.Fatalf("%d refresh-token redemptions for 30 concurrent requests, want 1", n)
	}
}

func TestRevokedRefreshToken(t *testing.T) {
	user, b := signedIn(t, expiringSite)
	env.Emu.RevokeRefreshTokens(user.Key)
	time.Sleep(1100 * time.Millisecond)
	status, _, body := b.api(expiringSite + "/graph/me")
	if status != 401 || body["reason"] != "login_required" || !strings.HasPrefix(body["login_url"].(string), "/.auth/login?") {
		t.Fatalf("API call: %d %v", status, body)
	}
	b.client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	status, _, _ = b.navigate(expiringSite + "/graph/me")
	if status != 302 {
		t.Fatalf("navigation: %d, want 302 to sign in", status)
	}
}

func TestIncrementalConsentAndClaimsChallengeGiveALoginURL(t *testing.T) {
	user, b := signedIn(t, signInSite)
	status, _, body := b.api(signInSite + "/send/mail")
	loginURL, _ := body["login_url"].(string)
	if status != 401 || body["reason"] != "consent_required" || !strings.Contains(loginURL, "Mail.Send") {
		t.Fatalf("consent: %d %v", status, body)
	}
	env.Emu.SetFault(user.Key, entraemu.Fault{Kind: entraemu.FaultMFARequired})
	defer env.Emu.ClearFaults()
	status, _, body = b.api(signInSite + "/mail/inbox")
	loginURL, _ = body["login_url"].(string)
	u, _ := url.Parse(loginURL)
	if status != 401 || body["reason"] != "mfa_required" || !strings.Contains(u.Query().Get("claims"), "capolids") {
		t.Fatalf("claims challenge: %d %v", status, body)
	}
	// Following the login URL with the claims signs the user in with MFA, and the call then succeeds.
	status, at, page := b.signIn(signInSite+loginURL, user.Key)
	if status != 200 || at.Path != "/mail/inbox" {
		t.Fatalf("after the step-up: %d at %s: %.300s", status, at, page)
	}
}

func TestLogoutClearsEverything(t *testing.T) {
	_, b := signedIn(t, signInSite)
	stolen := b.cookie(signInSite, "token_injector")
	if stolen == nil {
		t.Fatal("no session cookie")
	}
	req, _ := http.NewRequest(http.MethodPost, signInSite+"/.auth/logout", nil)
	req.Header.Set("Origin", signInSite)
	resp, err := b.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if status, _, body := b.api(signInSite + "/graph/me"); status != 401 || body["reason"] != "login_required" {
		t.Fatalf("after logout: %d %v", status, body)
	}
	// The old cookie value no longer names a session.
	replay, _ := http.NewRequest(http.MethodGet, signInSite+"/graph/me", nil)
	replay.AddCookie(stolen)
	if resp, _ := http.DefaultClient.Do(replay); resp.StatusCode != 401 {
		t.Fatalf("a logged-out cookie still works: %d", resp.StatusCode)
	}
}

func TestOpenRedirectsAreRefused(t *testing.T) {
	startCaddy(t)
	user := freshUser(t)
	for _, target := range []string{"https://evil.example/x", "//evil.example/x", `/\evil.example`, "/%2F%2Fevil.example",
		"%2F%2Fevil.example", "/%5Cevil.example", "javascript:alert(1)", "/\t/evil.example"} {
		t.Run(target, func(t *testing.T) {
			b := newBrowser(t)
			status, at, _ := b.signIn(signInSite+"/.auth/login?return_to="+url.QueryEscape(target), user.Key)
			if "http://"+at.Host != signInSite || strings.Contains(at.String(), "evil") {
				t.Fatalf("sign-in ended at %s (%d)", at, status)
			}
		})
	}
}

func TestBadCookiesAreNoSession(t *testing.T) {
	user, b := signedIn(t, signInSite)
	good := b.cookie(signInSite, "token_injector").Value
	flip := []byte(good)
	flip[len(flip)/2] ^= 1
	s := session.Session{UserKey: user.ObjectID + "." + entraemu.DefaultTenantID, ObjectID: user.ObjectID}
	for name, value := range map[string]string{
		"tampered":    string(flip),
		"truncated":   good[:len(good)/2],
		"garbage":     "not-a-cookie",
		"empty":       "",
		"foreign key": mintCookie(t, bytes.Repeat([]byte{7}, 32), time.Now(), s),
		"expired":     mintCookie(t, testCookieKey, time.Now().Add(-8*24*time.Hour), s),
	} {
		t.Run(name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, signInSite+"/graph/me", nil)
			req.Header.Set("Cookie", "token_injector="+value)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 401 {
				t.Fatalf("status %d, want 401 login_required", resp.StatusCode)
			}
		})
	}
	if status, _, _ := b.api(signInSite + "/graph/me"); status != 200 {
		t.Fatal("the genuine cookie stopped working")
	}
}

// mintCookie seals a session cookie as a proxy with key and clock now would.
func mintCookie(t *testing.T, key []byte, now time.Time, s session.Session) string {
	m, err := session.NewManager(session.Config{Keys: [][]byte{key}, Now: func() time.Time { return now }}, nil)
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	if _, err := m.Create(rec, httptest.NewRequest(http.MethodGet, signInSite+"/", nil), s); err != nil {
		t.Fatal(err)
	}
	return rec.Result().Cookies()[0].Value
}

func TestReloadKeepsSessions(t *testing.T) {
	user, b := signedIn(t, signInSite)
	before := tokenRequests()
	loadConfig(t, siteConfig(errorRoutes+"\n\trespond /health 200"))
	if status, _, body := b.api(signInSite + "/graph/me"); status != 200 || body["oid"] != user.ObjectID {
		t.Fatalf("after a reload: %d %v", status, body)
	}
	if n := tokenRequests() - before; n != 0 {
		t.Fatalf("%d token requests after a reload, want 0", n)
	}
}
