package signin

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tokeninjector/caddy-token-injector/internal/contract"
	"github.com/tokeninjector/caddy-token-injector/internal/entra"
	"github.com/tokeninjector/caddy-token-injector/internal/session"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func TestLoginCallbackHappyPath(t *testing.T) {
	e := newEnv(t, Config{}, session.Config{})
	b := newBrowser(t, e.h)
	w := b.get("/.auth/login?return_to=" + url.QueryEscape("/app/doc?id=7") + "&scope=Mail.Read&prompt=consent&login_hint=ada@example.com&claims=" + url.QueryEscape(`{"access_token":{"acrs":{"essential":true,"value":"c1"}}}`))
	if w.Code != http.StatusFound {
		t.Fatalf("login = %d: %s", w.Code, w.Body)
	}
	req := e.idp.lastAuth(t)
	if req.RedirectURI != "https://proxy.example/.auth/callback" {
		t.Fatalf("redirect URI = %q", req.RedirectURI)
	}
	wantScopes := []string{"https://graph.microsoft.com/User.Read", "Mail.Read", "openid", "profile", "offline_access"}
	if !slices.Equal(req.Scopes, wantScopes) {
		t.Fatalf("scopes = %q, want %q", req.Scopes, wantScopes)
	}
	if len(req.State) < 43 || len(req.Nonce) < 43 || req.State == req.Nonce || req.Prompt != "consent" ||
		req.LoginHint != "ada@example.com" || !strings.Contains(req.Claims, `"acrs"`) {
		t.Fatalf("authorize request = %+v", req)
	}
	// The pre-login cookie: per-attempt __Host- name (so Path=/), Lax so it survives Entra's redirect back.
	var pre *http.Cookie
	for _, c := range (&http.Response{Header: w.Header()}).Cookies() {
		if strings.HasPrefix(c.Name, "__Host-token_injector_login_") {
			pre = c
		}
	}
	if pre == nil || pre.Path != "/" || pre.Domain != "" || !pre.HttpOnly || !pre.Secure || pre.SameSite != http.SameSiteLaxMode ||
		pre.MaxAge != 600 || pre.Partitioned {
		t.Fatalf("pre-login cookie = %s", w.Header().Values("Set-Cookie"))
	}
	for _, secret := range []string{req.State, req.Nonce, "/app/doc"} {
		if strings.Contains(pre.Value, secret) {
			t.Fatal("the pre-login cookie is not sealed")
		}
	}

	w = b.callback(req.State, "the-code")
	if w.Code != http.StatusFound || w.Header().Get("Location") != "/app/doc?id=7" {
		t.Fatalf("callback = %d %q: %s", w.Code, w.Header().Get("Location"), w.Body)
	}
	if e.idp.redeemCount() != 1 {
		t.Fatalf("redeemed %d times", e.idp.redeemCount())
	}
	rc := e.idp.redeems[0]
	sum := sha256.Sum256([]byte(rc.CodeVerifier))
	if base64.RawURLEncoding.EncodeToString(sum[:]) != req.CodeChallenge {
		t.Fatal("code challenge is not S256(verifier)")
	}
	if len(rc.CodeVerifier) < 43 || len(rc.CodeVerifier) > 128 || rc.Code != "the-code" || rc.Nonce != req.Nonce ||
		rc.RedirectURI != req.RedirectURI || !slices.Equal(rc.Scopes, wantScopes) {
		t.Fatalf("redeem = %+v", rc)
	}
	if _, left := b.cookies[pre.Name]; left {
		t.Fatal("the pre-login cookie was not expired")
	}
	if !b.hasSession(e.sessions) {
		t.Fatal("no session after the callback")
	}
	s, _ := e.sessions.Load(b.request(http.MethodGet, "/app", nil))
	if s.UserKey != "oid-1.tid-1" || s.Username != "ada@example.com" || s.TenantID != "tid-1" {
		t.Fatalf("session = %+v", s)
	}
	for _, secret := range []string{"the-code", rc.CodeVerifier, req.State, req.Nonce} {
		if strings.Contains(w.Body.String(), secret) || strings.Contains(w.Header().Get("Location"), secret) {
			t.Fatal("the callback response shows a secret")
		}
	}
}

func TestCallbackReplayRefused(t *testing.T) {
	e := newEnv(t, Config{}, session.Config{})
	b := newBrowser(t, e.h)
	state := e.login(t, b, "return_to=/app")
	saved := maps.Clone(b.cookies)
	if w := b.callback(state, "code-1"); w.Code != http.StatusFound {
		t.Fatalf("first callback = %d", w.Code)
	}
	// An attacker replays the callback with the captured pre-login cookie.
	for _, code := range []string{"code-1", "code-2"} {
		attacker := newBrowser(t, e.h)
		for k, v := range saved {
			attacker.cookies[k] = v
			attacker.order = append(attacker.order, k)
		}
		w := attacker.callback(state, code)
		if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "already used") {
			t.Fatalf("replay = %d: %s", w.Code, w.Body)
		}
	}
	// The user's browser replaying (back button) has no pre-login cookie any more.
	if w := b.callback(state, "code-1"); w.Code != http.StatusBadRequest {
		t.Fatalf("browser replay = %d", w.Code)
	}
	if e.idp.redeemCount() != 1 {
		t.Fatalf("code redeemed %d times", e.idp.redeemCount())
	}
	// A code seen once is refused under another state too.
	state2 := e.login(t, b, "")
	if w := b.callback(state2, "code-1"); w.Code != http.StatusBadRequest || e.idp.redeemCount() != 1 {
		t.Fatalf("code replay under a new state = %d, redeems %d", w.Code, e.idp.redeemCount())
	}
}

func TestCallbackRefusals(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(e *env, b *browser, state string) (newState string)
		want   string
	}{
		{"missing pre-login cookie", func(_ *env, b *browser, s string) string {
			b.cookies = map[string]string{}
			return s
		}, "not started in this browser"},
		{"state mismatch", func(_ *env, _ *browser, _ string) string { return randomString(32) }, "not started in this browser"},
		{"cookie of another attempt under this state's name", func(_ *env, b *browser, s string) string {
			other := randomString(32)
			name := preLoginName(b.request(http.MethodGet, "/", nil), s)
			b.cookies[preLoginName(b.request(http.MethodGet, "/", nil), other)] = b.cookies[name]
			b.order = append(b.order, preLoginName(b.request(http.MethodGet, "/", nil), other))
			return other
		}, "does not match"},
		{"tampered cookie", func(_ *env, b *browser, s string) string {
			name := preLoginName(b.request(http.MethodGet, "/", nil), s)
			v := []byte(b.cookies[name])
			v[len(v)/2] ^= 1
			b.cookies[name] = string(v)
			return s
		}, "not valid"},
		{"session cookie replayed as pre-login", func(e *env, b *browser, s string) string {
			name := preLoginName(b.request(http.MethodGet, "/", nil), s)
			v, _ := e.sessions.Seal([]byte(`{"st":"`+s+`","cv":"x"}`), "session")
			b.cookies[name] = v
			return s
		}, "not valid"},
		{"expired pre-login", func(e *env, _ *browser, s string) string {
			e.clock.Advance(11 * time.Minute)
			return s
		}, "took too long"},
		{"empty state", func(_ *env, _ *browser, _ string) string { return "" }, "no valid state"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, Config{}, session.Config{})
			b := newBrowser(t, e.h)
			state := tt.mutate(e, b, e.login(t, b, "return_to=/app"))
			w := b.callback(state, "code")
			if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), tt.want) {
				t.Fatalf("callback = %d, want 400 with %q: %s", w.Code, tt.want, w.Body)
			}
			if e.idp.redeemCount() != 0 || b.hasSession(e.sessions) {
				t.Fatal("a refused callback redeemed the code or started a session")
			}
			if loc := w.Header().Get("Location"); loc != "" {
				t.Fatalf("a refused callback redirects to %q", loc)
			}
		})
	}
}

func TestCallbackJSONErrors(t *testing.T) {
	e := newEnv(t, Config{}, session.Config{})
	b := newBrowser(t, e.h)
	w := b.callback("nope", "code", "Accept", "application/json", "Sec-Fetch-Mode", "cors")
	var p contract.Problem
	if w.Code != http.StatusBadRequest || json.Unmarshal(w.Body.Bytes(), &p) != nil || p.Code != "invalid_request" {
		t.Fatalf("callback = %d %s", w.Code, w.Body)
	}
}

func TestCallbackEntraErrorPage(t *testing.T) {
	tests := []struct {
		query  string
		status int
	}{
		{"error=access_denied&error_description=" + url.QueryEscape(`AADSTS65004: <script>alert("x")</script> & "quotes"`), 401},
		{"error=%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E&error_description=%22%27%3E%3Csvg%3E", 400},
		{"error=server_error&error_description=" + strings.Repeat("long+", 200), 400},
	}
	for _, tt := range tests {
		e := newEnv(t, Config{}, session.Config{})
		b := newBrowser(t, e.h)
		w := b.get("/.auth/callback?"+tt.query, "Sec-Fetch-Site", "cross-site")
		body := w.Body.String()
		if w.Code != tt.status || strings.Contains(body, "<script>alert") || strings.Contains(body, "<img") ||
			strings.Contains(body, "<svg") || strings.Contains(body, `"'>`) {
			t.Fatalf("%s: %d\n%s", tt.query, w.Code, body)
		}
		if !strings.Contains(w.Header().Get("Content-Security-Policy"), "default-src 'none'") ||
			!strings.HasPrefix(w.Header().Get("Content-Type"), "text/html") {
			t.Fatalf("headers = %v", w.Header())
		}
		if len(body) > 3000 {
			t.Fatalf("the error description was not truncated (%d bytes)", len(body))
		}
		if e.idp.redeemCount() != 0 {
			t.Fatal("an error response redeemed something")
		}
	}
	// With a valid state, the attempt's pre-login cookie is consumed as well.
	e := newEnv(t, Config{}, session.Config{})
	b := newBrowser(t, e.h)
	state := e.login(t, b, "")
	b.get("/.auth/callback?error=access_denied&state="+state, "Sec-Fetch-Site", "cross-site")
	if len(b.cookies) != 0 {
		t.Fatalf("cookies left: %v", b.cookies)
	}
}

func TestRedeemFailures(t *testing.T) {
	grant := func(code int) error { return &entra.Error{StatusCode: 400, Code: "invalid_grant", Codes: []int{code}} }
	tests := []struct {
		name   string
		err    error
		status int
		level  zapcore.Level
	}{
		// A bad, expired or replayed code, or a PKCE mismatch, is the browser's: 400 and a debug line.
		{"expired code", grant(70008), 400, zapcore.DebugLevel},
		{"code already redeemed", grant(54005), 400, zapcore.DebugLevel},
		{"malformed code", grant(9002313), 400, zapcore.DebugLevel},
		{"PKCE mismatch", grant(501481), 400, zapcore.DebugLevel},
		{"unreachable", &entra.UnavailableError{Err: errors.New("refused")}, 503, zapcore.WarnLevel},
		{"unknown", errors.New("boom"), 502, zapcore.ErrorLevel},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			core, logs := observer.New(zapcore.DebugLevel)
			e := newEnv(t, Config{Logger: zap.New(core).Named("http.handlers.token_injector")}, session.Config{})
			e.idp.redeemErr = tt.err
			b := newBrowser(t, e.h)
			w := b.callback(e.login(t, b, ""), "code")
			if w.Code != tt.status || b.hasSession(e.sessions) || strings.Contains(w.Body.String(), "boom") {
				t.Fatalf("callback = %d: %s", w.Code, w.Body)
			}
			// The one log line is the module's, so `log { include http.handlers.token_injector }` keeps it.
			if entries := logs.All(); len(entries) != 1 || entries[0].LoggerName != "http.handlers.token_injector" ||
				entries[0].Level != tt.level {
				t.Fatalf("log entries = %+v, want one at %v", entries, tt.level)
			}
			if tt.status == 400 && !strings.Contains(w.Body.String(), "start the sign-in again") {
				t.Fatalf("a refused code does not say to start again: %s", w.Body)
			}
		})
	}
}

func TestLoginRefusesBadInput(t *testing.T) {
	e := newEnv(t, Config{}, session.Config{})
	for _, q := range []string{
		"mode=window", "prompt=evil", "claims=notjson", "claims=" + url.QueryEscape(`["array"]`),
		"scope=" + url.QueryEscape("a\"b"), "scope=" + strings.Repeat("s+", 21),
		"login_hint=" + url.QueryEscape("a\nb"), "login_hint=" + strings.Repeat("x", 300),
		"return_to=" + url.QueryEscape("/"+strings.Repeat("a", 2000)) + "&scope=" + longScopes(),
	} {
		b := newBrowser(t, e.h)
		if w := b.get("/.auth/login?" + q); w.Code != http.StatusBadRequest || len(b.cookies) != 0 {
			t.Errorf("%s: %d", q, w.Code)
		}
	}
	e.idp.authErr = errors.New("discovery failed")
	if w := newBrowser(t, e.h).get("/.auth/login"); w.Code != http.StatusBadGateway {
		t.Errorf("authorize URL failure: %d", w.Code)
	}
	bad := newBrowser(t, e.h)
	r := bad.request(http.MethodGet, "/.auth/login", nil)
	r.Host = "evil.example/x"
	if w := bad.do(r); w.Code != http.StatusBadRequest {
		t.Errorf("bad host: %d", w.Code)
	}
}

func longScopes() string {
	var s []string
	for i := range 20 {
		s = append(s, fmt.Sprintf("api://%d/%s", i, strings.Repeat("x", 100)))
	}
	return url.QueryEscape(strings.Join(s, " "))
}

func TestUnsafeReturnToBecomesRoot(t *testing.T) {
	e := newEnv(t, Config{}, session.Config{})
	for _, rt := range []string{"//evil.example", "https://evil.example/", "/\\evil", "javascript:alert(1)", ""} {
		b := newBrowser(t, e.h)
		w := b.callback(e.login(t, b, "return_to="+url.QueryEscape(rt)), "code-"+rt)
		if w.Code != http.StatusFound || w.Header().Get("Location") != "/" {
			t.Errorf("return_to %q: %d %q", rt, w.Code, w.Header().Get("Location"))
		}
	}
}

func TestPendingLoginsArePruned(t *testing.T) {
	e := newEnv(t, Config{}, session.Config{})
	b := newBrowser(t, e.h)
	var states []string
	for range 6 {
		states = append(states, e.login(t, b, ""))
		e.clock.Advance(time.Second)
	}
	if len(b.cookies) != maxPendingLogins {
		t.Fatalf("%d pre-login cookies kept, want %d", len(b.cookies), maxPendingLogins)
	}
	// The newest attempts still complete; the oldest were dropped.
	if w := b.callback(states[0], "c0"); w.Code != http.StatusBadRequest {
		t.Fatalf("oldest attempt = %d", w.Code)
	}
	if w := b.callback(states[5], "c5"); w.Code != http.StatusFound {
		t.Fatalf("newest attempt = %d", w.Code)
	}
	if w := b.callback(states[4], "c4"); w.Code != http.StatusFound {
		t.Fatalf("second newest attempt (another tab) = %d", w.Code)
	}
}

func TestLocalDevCookies(t *testing.T) {
	e := newEnv(t, Config{}, session.Config{})
	b := newBrowser(t, e.h)
	w := b.get("http://localhost:8080/.auth/login")
	if e.idp.lastAuth(t).RedirectURI != "http://localhost:8080/.auth/callback" {
		t.Fatalf("redirect URI = %q", e.idp.lastAuth(t).RedirectURI)
	}
	c := (&http.Response{Header: w.Header()}).Cookies()
	if len(c) != 1 || c[0].Secure || !strings.HasPrefix(c[0].Name, "token_injector_login_") {
		t.Fatalf("cookies = %v", w.Header().Values("Set-Cookie"))
	}
}

// A callback captured before a reload is refused after it: the reloaded handler keeps the marks.
func TestCallbackReplayRefusedAfterAReload(t *testing.T) {
	marks := NewMarks()
	e := newEnv(t, Config{Marks: marks}, session.Config{})
	b := newBrowser(t, e.h)
	state := e.login(t, b, "")
	attacker := maps.Clone(b.cookies)
	if w := b.callback(state, "code-1"); w.Code != http.StatusFound {
		t.Fatalf("first callback = %d", w.Code)
	}
	reloaded := newEnv(t, Config{Marks: marks}, session.Config{})
	replay := newBrowser(t, reloaded.h)
	for k, v := range attacker {
		replay.cookies[k] = v
		replay.order = append(replay.order, k)
	}
	if w := replay.callback(state, "code-2"); w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "already used") {
		t.Fatalf("replay after the reload = %d: %s", w.Code, w.Body)
	}
	if n := reloaded.idp.redeemCount(); n != 0 {
		t.Fatalf("the reloaded handler redeemed %d codes", n)
	}
}

// A user of a tenant allowed_tenants leaves out gets no session: 403, and the tokens the redemption kept are
// forgotten.
func TestCallbackRefusesATenantNotAllowed(t *testing.T) {
	e := newEnv(t, Config{TenantAllowed: func(tid string) bool { return tid != "tid-1" }}, session.Config{})
	b := newBrowser(t, e.h)
	state := e.login(t, b, "")
	w := b.callback(state, "code-1")
	if w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), "organization is not allowed") {
		t.Fatalf("callback = %d: %s", w.Code, w.Body)
	}
	for _, c := range w.Result().Cookies() {
		if strings.Contains(c.Name, session.DefaultCookieName) && c.MaxAge >= 0 && c.Value != "" {
			t.Fatalf("a session cookie was set: %s", c.Name)
		}
	}
	e.idp.mu.Lock()
	defer e.idp.mu.Unlock()
	if len(e.idp.signOuts) != 1 || e.idp.signOuts[0] != "oid-1.tid-1" {
		t.Fatalf("sign-outs %v, want the refused user's", e.idp.signOuts)
	}
}
