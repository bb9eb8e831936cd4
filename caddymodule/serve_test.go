package caddymodule

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/tokeninjector/caddy-token-injector/internal/acquire"
	"github.com/tokeninjector/caddy-token-injector/internal/callerauth"
	"github.com/tokeninjector/caddy-token-injector/internal/contract"
	"github.com/tokeninjector/caddy-token-injector/internal/cors"
	"github.com/tokeninjector/caddy-token-injector/internal/entra"
	"github.com/tokeninjector/caddy-token-injector/internal/identity"
	"github.com/tokeninjector/caddy-token-injector/internal/session"
	"github.com/tokeninjector/caddy-token-injector/internal/signin"
	"github.com/tokeninjector/caddy-token-injector/internal/tokencache"
)

// ServeHTTP called directly, in the style of Caddy's headers_test.go: every branch, with the validator and the
// engine replaced by fakes that answer from the test's table.

var adele = identity.User{ObjectID: "oid-adele", TenantID: "tid", Username: "adele@contoso.example", Name: "Adele"}

type fakeCallers map[string]error // token -> its error; absent tokens are valid for adele

// notAllowedTenant is the tenant fakeCallers takes no users of (allowed_tenants leaves it out).
const notAllowedTenant = "0e0e0e0e-4444-4000-8000-00000000a0a0"

func (f fakeCallers) TakesTenant(tid string) bool { return tid != notAllowedTenant }

func (f fakeCallers) Validate(_ context.Context, raw string, route *callerauth.Rules) (*callerauth.Identity, error) {
	if err, ok := f[raw]; ok {
		return nil, err
	}
	id := &callerauth.Identity{User: adele, UserKey: adele.Key()}
	if route != nil {
		if err := route.Authorize(id); err != nil {
			return nil, err
		}
	}
	return id, nil
}

type fakeTokens struct {
	err  error
	got  []acquire.Request
	wait bool // block until the request's context ends
}

func (f *fakeTokens) Token(ctx context.Context, req acquire.Request) (tokencache.Token, error) {
	f.got = append(f.got, req)
	if f.wait {
		<-ctx.Done()
		return tokencache.Token{}, ctx.Err()
	}
	if f.err != nil {
		return tokencache.Token{}, f.err
	}
	return tokencache.Token{AccessToken: "downstream-for-" + req.Key.User, ExpiresOn: time.Now().Add(time.Hour)}, nil
}

type noIDP struct{}

func (noIDP) AuthCodeURL(context.Context, acquire.AuthCodeParams) (string, error) {
	return "https://login.example/authorize", nil
}
func (noIDP) SignIn(context.Context, acquire.RedeemParams) (acquire.SignedIn, error) {
	return acquire.SignedIn{}, errors.New("not used")
}
func (noIDP) SignOut(context.Context, string) error { return nil }
func (noIDP) EndSessionURL(string) string           { return "" }

// newTestHandler is a provisioned handler without Caddy; withSignIn adds sessions and the sign-in endpoints.
func newTestHandler(t *testing.T, tokens *fakeTokens, withSignIn bool) *Handler {
	t.Helper()
	policy, err := cors.New([]string{"https://addin.example"})
	if err != nil {
		t.Fatal(err)
	}
	h := &Handler{scopes: []string{"https://graph.microsoft.com/User.Read"}, scopeKey: "https://graph.microsoft.com/user.read",
		callers: fakeCallers{"expired": &callerauth.InvalidTokenError{Description: "token expired"},
			"keys-down": &entra.UnavailableError{Op: "fetching signing keys", Host: "login.example", Err: errors.New("reset")}},
		tokens: tokens, logger: zap.NewNop(), cors: policy}
	h.answer = contract.Options{Scopes: h.scopes}
	if withSignIn {
		key := []byte("0123456789abcdef0123456789abcdef")
		if h.sessions, err = session.NewManager(session.Config{Keys: [][]byte{key}}, nil); err != nil {
			t.Fatal(err)
		}
		if h.signIn, err = signin.New(signin.Config{Scopes: h.scopes, CORS: policy}, noIDP{}, h.sessions); err != nil {
			t.Fatal(err)
		}
		h.answer.LoginURL = h.loginURL
	}
	return h
}

// sessionCookie signs adele in on h and returns her session cookie.
func sessionCookie(t *testing.T, h *Handler) *http.Cookie {
	t.Helper()
	w := httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodGet, "http://localhost/", nil)
	if _, err := h.sessions.Create(w, r, session.Session{UserKey: adele.Key(), ObjectID: adele.ObjectID, TenantID: adele.TenantID}); err != nil {
		t.Fatal(err)
	}
	return w.Result().Cookies()[0]
}

// recordingNext is the next handler: it records the request it was given.
type recordingNext struct{ got *http.Request }

func (n *recordingNext) ServeHTTP(w http.ResponseWriter, r *http.Request) error {
	n.got = r
	w.WriteHeader(http.StatusTeapot)
	return nil
}

func TestServeHTTP(t *testing.T) {
	mfa := entra.ParseError(400, nil, []byte(`{"error":"invalid_grant","error_codes":[50076],"claims":"{\"access_token\":{}}"}`))
	tests := []struct {
		name       string
		signIn     bool
		tokenErr   error
		prepare    func(t *testing.T, h *Handler, r *http.Request)
		status     int
		code       string // body "error", when refused
		reason     string
		forwarded  string // Authorization the upstream got
		location   string // prefix of a redirect
		loginURL   bool
		logSkipped bool
		signInPage bool // answered by the sign-in endpoints, which set no refusal placeholders
	}{
		{name: "bearer: forwarded with the downstream token", prepare: bearer("sso"), status: 418,
			forwarded: "Bearer downstream-for-oid-adele.tid"},
		{name: "bearer: invalid token", prepare: bearer("expired"), status: 401, code: "invalid_token"},
		{name: "bearer: signing keys unavailable", prepare: bearer("keys-down"), status: 503, code: "temporarily_unavailable"},
		{name: "bearer: engine refusal mapped by the contract", tokenErr: mfa, prepare: bearer("sso"), status: 401,
			code: "interaction_required", reason: "mfa_required"},
		{name: "bearer: outage", tokenErr: &entra.UnavailableError{Err: errors.New("reset")}, prepare: bearer("sso"),
			status: 503, code: "temporarily_unavailable"},
		{name: "bearer wins over a session", signIn: true, prepare: func(t *testing.T, h *Handler, r *http.Request) {
			r.AddCookie(sessionCookie(t, h))
			bearer("sso")(t, h, r)
		}, status: 418, forwarded: "Bearer downstream-for-oid-adele.tid"},
		{name: "no credentials, no sign-in", status: 401, code: "invalid_token"},
		{name: "no session: an API call gets login_url", signIn: true, status: 401, code: "interaction_required",
			reason: "login_required", loginURL: true},
		{name: "no session: a navigation is redirected", signIn: true, prepare: navigation, status: 302,
			location: "/.auth/login?"},
		{name: "session: forwarded, cookie stripped", signIn: true, prepare: func(t *testing.T, h *Handler, r *http.Request) {
			r.AddCookie(sessionCookie(t, h))
			r.AddCookie(&http.Cookie{Name: "theirs", Value: "kept"})
		}, status: 418, forwarded: "Bearer downstream-for-oid-adele.tid"},
		{name: "session: the cookie alone, its header's slice reused", signIn: true,
			prepare: func(t *testing.T, h *Handler, r *http.Request) { r.AddCookie(sessionCookie(t, h)) },
			status:  418, forwarded: "Bearer downstream-for-oid-adele.tid"},
		{name: "session: the caller's Basic credentials replaced", signIn: true, prepare: func(t *testing.T, h *Handler, r *http.Request) {
			r.AddCookie(sessionCookie(t, h))
			r.Header.Set("Authorization", "Basic dXNlcjpwYXNz")
		}, status: 418, forwarded: "Bearer downstream-for-oid-adele.tid"},
		{name: "session: two Authorization lines become one", signIn: true, prepare: func(t *testing.T, h *Handler, r *http.Request) {
			r.AddCookie(sessionCookie(t, h))
			r.Header.Add("Authorization", "Basic dXNlcjpwYXNz")
			r.Header.Add("Authorization", "Negotiate abc")
		}, status: 418, forwarded: "Bearer downstream-for-oid-adele.tid"},
		{name: "session: a tenant allowed_tenants leaves out", signIn: true, prepare: func(t *testing.T, h *Handler, r *http.Request) {
			w := httptest.NewRecorder()
			if _, err := h.sessions.Create(w, httptest.NewRequest(http.MethodGet, "http://localhost/", nil),
				session.Session{UserKey: "oid." + notAllowedTenant, ObjectID: "oid", TenantID: notAllowedTenant}); err != nil {
				t.Fatal(err)
			}
			r.AddCookie(w.Result().Cookies()[0])
		}, status: 403, code: "access_denied", reason: "tenant_not_allowed"},
		{name: "session: refusal carries login_url with the claims", signIn: true, tokenErr: mfa,
			prepare: func(t *testing.T, h *Handler, r *http.Request) { r.AddCookie(sessionCookie(t, h)) },
			status:  401, code: "interaction_required", reason: "mfa_required", loginURL: true},
		{name: "CORS preflight", prepare: func(t *testing.T, h *Handler, r *http.Request) {
			r.Method = http.MethodOptions
			r.Header.Set("Origin", "https://addin.example")
			r.Header.Set("Access-Control-Request-Method", "GET")
		}, status: 204},
		{name: "sign-in endpoint served by the handler", signIn: true, prepare: path("/.auth/me"), status: 401,
			code: "interaction_required", reason: "login_required", loginURL: true, signInPage: true},
		{name: "the callback is kept out of the access log", signIn: true, prepare: path("/.auth/callback?code=c&state=s"),
			status: 400, logSkipped: true},
		{name: "sign-in paths are proxied when sign-in is off", prepare: chain(path("/.auth/me"), bearer("sso")),
			status: 418, forwarded: "Bearer downstream-for-oid-adele.tid"},
		{name: "another route's session cookie is stripped where sign-in is off", prepare: chain(bearer("sso"),
			func(_ *testing.T, _ *Handler, r *http.Request) {
				r.AddCookie(&http.Cookie{Name: "__Host-token_injector", Value: "sealed-session"})
				r.AddCookie(&http.Cookie{Name: "theirs", Value: "kept"})
			}), status: 418, forwarded: "Bearer downstream-for-oid-adele.tid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newTestHandler(t, &fakeTokens{err: tt.tokenErr}, tt.signIn)
			r := httptest.NewRequest(http.MethodGet, "http://localhost/graph/me", nil)
			repl := caddyhttp.NewTestReplacer(r)
			*r = *r.WithContext(context.WithValue(r.Context(), caddyhttp.VarsCtxKey, map[string]any{}))
			if tt.prepare != nil {
				tt.prepare(t, h, r)
			}
			w := httptest.NewRecorder()
			next := &recordingNext{}
			if err := h.ServeHTTP(w, r, next); err != nil {
				t.Fatalf("ServeHTTP returned %v; refusals are written, not returned", err)
			}
			if w.Code != tt.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tt.status, w.Body)
			}
			checkForwarded(t, next, tt.forwarded)
			if tt.location != "" && !strings.HasPrefix(w.Header().Get("Location"), tt.location) {
				t.Fatalf("Location %q", w.Header().Get("Location"))
			}
			if tt.code != "" {
				checkRefusal(t, w, tt.code, tt.reason, tt.loginURL)
				if !tt.signInPage {
					checkPlaceholders(t, repl, tt.code, tt.reason)
				}
			}
			if skipped, _ := caddyhttp.GetVar(r.Context(), caddyhttp.LogSkipVar).(bool); skipped != tt.logSkipped {
				t.Fatalf("log skipped = %v", skipped)
			}
		})
	}
}

func checkForwarded(t *testing.T, next *recordingNext, want string) {
	t.Helper()
	if want == "" {
		if next.got != nil {
			t.Fatal("a refused request reached the upstream")
		}
		return
	}
	if next.got == nil {
		t.Fatal("the request did not reach the upstream")
	}
	if got := next.got.Header.Values("Authorization"); len(got) != 1 || got[0] != want {
		t.Fatalf("upstream got Authorization %q, want %q alone", got, want)
	}
	for _, c := range next.got.Cookies() {
		if strings.Contains(c.Name, "token_injector") {
			t.Fatalf("the session cookie reached the upstream: %s", c.Name)
		}
	}
}

func checkRefusal(t *testing.T, w *httptest.ResponseRecorder, code, reason string, loginURL bool) {
	t.Helper()
	var body map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
		t.Fatalf("body %q: %v", w.Body, err)
	}
	if body["error"] != code || (reason != "" && body["reason"] != reason) {
		t.Fatalf("body %v", body)
	}
	if _, has := body["login_url"]; has != loginURL {
		t.Fatalf("login_url present = %v: %v", has, body)
	}
}

func checkPlaceholders(t *testing.T, repl *caddy.Replacer, code, reason string) {
	t.Helper()
	if got, _ := repl.GetString("http.token_injector.error"); got != code {
		t.Fatalf("{http.token_injector.error} = %q", got)
	}
	if got, _ := repl.GetString("http.token_injector.reason"); got != reason {
		t.Fatalf("{http.token_injector.reason} = %q", got)
	}
}

func TestServeHTTPClientGone(t *testing.T) {
	tokens := &fakeTokens{wait: true}
	h := newTestHandler(t, tokens, false)
	ctx, cancel := context.WithCancel(context.Background())
	r := httptest.NewRequest(http.MethodGet, "http://localhost/graph/me", nil).WithContext(ctx)
	repl := caddyhttp.NewTestReplacer(r)
	r.Header.Set("Authorization", "Bearer sso")
	w := httptest.NewRecorder()
	done := make(chan error, 1)
	next := &recordingNext{}
	go func() { done <- h.ServeHTTP(w, r, next) }()
	cancel() // the client hangs up while the token is being fetched
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if w.Code != statusClientClosedRequest || w.Body.Len() != 0 || next.got != nil {
		t.Fatalf("got %d %q", w.Code, w.Body)
	}
	if got, _ := repl.GetString("http.token_injector.error"); got != "client_closed_request" {
		t.Fatalf("{http.token_injector.error} = %q", got)
	}
}

func bearer(tok string) func(*testing.T, *Handler, *http.Request) {
	return func(_ *testing.T, _ *Handler, r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }
}

func navigation(_ *testing.T, _ *Handler, r *http.Request) {
	r.Header.Set("Sec-Fetch-Mode", "navigate")
	r.Header.Set("Accept", "text/html")
}

func path(p string) func(*testing.T, *Handler, *http.Request) {
	return func(_ *testing.T, _ *Handler, r *http.Request) {
		u := httptest.NewRequest(http.MethodGet, "http://localhost"+p, nil).URL
		r.URL, r.RequestURI = u, u.RequestURI()
	}
}

func chain(fs ...func(*testing.T, *Handler, *http.Request)) func(*testing.T, *Handler, *http.Request) {
	return func(t *testing.T, h *Handler, r *http.Request) {
		for _, f := range fs {
			f(t, h, r)
		}
	}
}
