package signin

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokeninjector/caddy-token-injector/internal/acquire"
	"github.com/tokeninjector/caddy-token-injector/internal/cors"
	"github.com/tokeninjector/caddy-token-injector/internal/dev/testenv"
	"github.com/tokeninjector/caddy-token-injector/internal/identity"
	"github.com/tokeninjector/caddy-token-injector/internal/session"
)

// policy is the CORS policy of origins, which must be valid.
func policy(t testing.TB, origins ...string) cors.Policy {
	t.Helper()
	p, err := cors.New(origins)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// fakeIDP records every call and answers from its fields.
type fakeIDP struct {
	mu         sync.Mutex
	authReqs   []acquire.AuthCodeParams
	redeems    []acquire.RedeemParams
	signOuts   []string
	account    identity.User
	redeemErr  error
	authErr    error
	endSession string
	lastEndArg string
}

func (f *fakeIDP) AuthCodeURL(_ context.Context, req acquire.AuthCodeParams) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.authReqs = append(f.authReqs, req)
	if f.authErr != nil {
		return "", f.authErr
	}
	v := url.Values{"state": {req.State}, "nonce": {req.Nonce}, "code_challenge": {req.CodeChallenge},
		"code_challenge_method": {"S256"}, "redirect_uri": {req.RedirectURI}, "scope": {strings.Join(req.Scopes, " ")}}
	return "https://login.example/tid/oauth2/v2.0/authorize?" + v.Encode(), nil
}

func (f *fakeIDP) SignIn(_ context.Context, p acquire.RedeemParams) (acquire.SignedIn, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.redeems = append(f.redeems, p)
	return acquire.SignedIn{User: f.account}, f.redeemErr
}

func (f *fakeIDP) SignOut(_ context.Context, userKey string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.signOuts = append(f.signOuts, userKey)
	return nil
}

func (f *fakeIDP) EndSessionURL(post string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastEndArg = post
	if f.endSession == "" {
		return ""
	}
	return f.endSession + "?post_logout_redirect_uri=" + url.QueryEscape(post)
}

func (f *fakeIDP) lastAuth(t testing.TB) acquire.AuthCodeParams {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.authReqs) == 0 {
		t.Fatal("AuthCodeURL was not called")
	}
	return f.authReqs[len(f.authReqs)-1]
}

func (f *fakeIDP) redeemCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.redeems)
}

type env struct {
	h        *Handler
	idp      *fakeIDP
	sessions *session.Manager
	clock    *testenv.Clock
}

func key() []byte {
	k := make([]byte, session.KeySize)
	for i := range k {
		k[i] = byte(i + 1)
	}
	return k
}

func newEnv(t testing.TB, cfg Config, scfg session.Config) *env {
	t.Helper()
	return newEnvUsed(t, cfg, scfg, maxUsed)
}

// newEnvUsed is newEnv with a replay memory of usedCapacity entries.
func newEnvUsed(t testing.TB, cfg Config, scfg session.Config, usedCapacity int) *env {
	t.Helper()
	c := testenv.NewClock(time.Date(2030, 5, 6, 7, 8, 9, 0, time.UTC))
	scfg.Keys, scfg.Now = [][]byte{key()}, c.Now
	sm, err := session.NewManager(scfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	idp := &fakeIDP{account: identity.User{ObjectID: "oid-1", TenantID: "tid-1",
		Username: "ada@example.com", Name: "Ada <Lovelace>"}}
	if cfg.Scopes == nil {
		cfg.Scopes = []string{"https://graph.microsoft.com/User.Read"}
	}
	if cfg.CORS.AllowedOrigins == nil {
		cfg.CORS = policy(t, "https://app.example")
	}
	cfg.Now = c.Now
	h, err := newHandler(cfg, idp, sm, usedCapacity)
	if err != nil {
		t.Fatal(err)
	}
	return &env{h: h, idp: idp, sessions: sm, clock: c}
}

// browser keeps cookies like a (path-ignoring) user agent and sends navigation headers by default.
type browser struct {
	t       testing.TB
	h       http.Handler
	cookies map[string]string
	order   []string
	remote  string // RemoteAddr of its requests; httptest's default when empty
}

func newBrowser(t testing.TB, h http.Handler) *browser {
	return &browser{t: t, h: h, cookies: map[string]string{}}
}

func (b *browser) request(method, target string, body io.Reader, headers ...string) *http.Request {
	if strings.HasPrefix(target, "/") {
		target = "https://proxy.example" + target
	}
	r := httptest.NewRequest(method, target, body)
	if b.remote != "" {
		r.RemoteAddr = b.remote
	}
	if r.URL.Scheme == "https" {
		r.TLS = &tls.ConnectionState{}
	}
	r.Header.Set("Sec-Fetch-Mode", "navigate")
	r.Header.Set("Sec-Fetch-Site", "same-origin")
	r.Header.Set("Accept", "text/html,application/xhtml+xml,*/*;q=0.8")
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] == "" {
			r.Header.Del(headers[i])
		} else {
			r.Header.Set(headers[i], headers[i+1])
		}
	}
	var parts []string
	for _, name := range b.order {
		if v, ok := b.cookies[name]; ok {
			parts = append(parts, name+"="+v)
		}
	}
	if len(parts) > 0 {
		r.Header.Set("Cookie", strings.Join(parts, "; "))
	}
	return r
}

func (b *browser) do(r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	b.h.ServeHTTP(w, r)
	for _, c := range (&http.Response{Header: w.Header()}).Cookies() {
		if c.MaxAge < 0 {
			delete(b.cookies, c.Name)
			continue
		}
		if _, ok := b.cookies[c.Name]; !ok {
			b.order = append(b.order, c.Name)
		}
		b.cookies[c.Name] = c.Value
	}
	return w
}

func (b *browser) get(target string, headers ...string) *httptest.ResponseRecorder {
	return b.do(b.request(http.MethodGet, target, nil, headers...))
}

// login starts a sign-in and returns the state Entra would echo.
func (e *env) login(t testing.TB, b *browser, query string) string {
	t.Helper()
	w := b.get("/.auth/login?" + query)
	if w.Code != http.StatusFound || !strings.HasPrefix(w.Header().Get("Location"), "https://login.example/") {
		t.Fatalf("login = %d %s: %s", w.Code, w.Header().Get("Location"), w.Body)
	}
	return e.idp.lastAuth(t).State
}

func (b *browser) callback(state, code string, headers ...string) *httptest.ResponseRecorder {
	// Entra redirects cross-site, top-level.
	h := append([]string{"Sec-Fetch-Site", "cross-site"}, headers...)
	return b.get("/.auth/callback?"+url.Values{"state": {state}, "code": {code}}.Encode(), h...)
}

func (b *browser) hasSession(sm *session.Manager) bool {
	r := b.request(http.MethodGet, "/app", nil)
	_, ok := sm.Load(r)
	return ok
}
