// Package signin is proxy-managed sign-in for callers without a bearer token: the authorization code flow with
// PKCE against Entra ID, ending in a sealed session cookie (package session), and the endpoints around it:
// {Path}/login, {Path}/callback, {Path}/logout, {Path}/me and, for partitioned cookies, {Path}/handoff. Tokens stay
// on the server; the browser only ever holds the session cookie.
package signin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/tokeninjector/caddy-token-injector/internal/acquire"
	"github.com/tokeninjector/caddy-token-injector/internal/cors"
	"github.com/tokeninjector/caddy-token-injector/internal/session"
)

// IdentityProvider is the identity provider side of sign-in; *acquire.Engine implements it.
type IdentityProvider interface {
	// AuthCodeURL returns the authorize URL, including code_challenge (S256), state, nonce, prompt and claims.
	AuthCodeURL(ctx context.Context, p acquire.AuthCodeParams) (string, error)
	// SignIn redeems a code with the PKCE verifier, checks the id_token's nonce and keeps the tokens server side.
	SignIn(ctx context.Context, p acquire.RedeemParams) (acquire.SignedIn, error)
	// SignOut forgets the user's cached tokens and refresh token.
	SignOut(ctx context.Context, userKey string) error
	// EndSessionURL returns Entra's end_session_endpoint for postLogoutRedirectURI, "" if unknown.
	EndSessionURL(postLogoutRedirectURI string) string
}

// Config configures a Handler. Zero values take the defaults noted.
type Config struct {
	// Path is where the endpoints live. Default "/.auth".
	Path string
	// Scopes are asked for at every sign-in; openid, profile and offline_access are always added.
	Scopes []string
	// CORS is the routes' cross-origin policy: its origins may call the endpoints cross-origin and receive the
	// popup's postMessage.
	CORS cors.Policy
	// EndSession makes logout also end the Entra session (a redirect to its end-session endpoint).
	EndSession bool
	// LoginTimeout bounds the time from login to callback: the user's time at Entra, MFA included. A shorter one
	// raises the total redemption rate in proportion (see totalRate). Between 1m and 1h. Default 10m.
	LoginTimeout time.Duration
	// ClientAddress returns the client's address, which code redemptions are rate limited by. Behind Caddy it
	// must be the client IP Caddy resolved (trusted proxies applied). Default: the host of r.RemoteAddr.
	ClientAddress func(*http.Request) string
	Now           func() time.Time
	// Used is the one-time memory shared by every replica (redisstore.Used), so a state or code is accepted once
	// across all of them. Default: none, this handler's own memory only; it also serves while Used fails.
	Used UsedStore
	// TenantAllowed says whether users of a tenant may sign in (allowed_tenants). Default: every tenant the
	// authority signs in.
	TenantAllowed func(tid string) bool
	// Marks is this process's memory of used states, codes and handoffs. Default: a new one. Pass the same one
	// to every handler of a registration, and across reloads: a new one forgets, and a handoff captured before a
	// reload could be used again after it.
	Marks *Marks
	// Logger receives failures worth an operator's attention (never codes, tokens or cookie values). Default: none.
	Logger *zap.Logger
}

// Handler serves the sign-in endpoints. It is safe for concurrent use.
type Handler struct {
	cfg      Config
	idp      IdentityProvider
	sessions *session.Manager
	log      *zap.Logger

	// limiter bounds code redemptions so a flood neither spends the app's quota at Entra nor flushes used.
	limiter *redeemLimiter
	// callbackPath is Path + "/callback", which every request's Referer is checked against.
	callbackPath string
}

// maxUsed bounds the replay memory; the redemption limit keeps a flood to a quarter of it (see totalRate).
const maxUsed = 200_000

// LoginTimeout's bounds. The total redemption rate grows as it shrinks: at 1m, 278 a second.
const (
	minLoginTimeout = time.Minute
	maxLoginTimeout = time.Hour
)

// New checks cfg and returns a Handler. Errors name the offending configuration field.
func New(cfg Config, idp IdentityProvider, sessions *session.Manager) (*Handler, error) {
	return newHandler(cfg, idp, sessions, maxUsed)
}

// newHandler is New with the replay memory's capacity, which tests make small.
func newHandler(cfg Config, idp IdentityProvider, sessions *session.Manager, usedCapacity int) (*Handler, error) {
	if idp == nil || sessions == nil {
		return nil, errors.New("signin: an identity provider and a session manager are required")
	}
	if err := CheckPath(cfg.Path); err != nil {
		return nil, fmt.Errorf("path: %w", err)
	}
	if cfg.Path == "" {
		cfg.Path = "/.auth"
	}
	for _, s := range cfg.Scopes {
		if !validScope(s) {
			return nil, fmt.Errorf("scopes: %q is not a valid scope", s)
		}
	}
	if cfg.LoginTimeout == 0 {
		cfg.LoginTimeout = 10 * time.Minute
	}
	if cfg.LoginTimeout < minLoginTimeout || cfg.LoginTimeout > maxLoginTimeout {
		return nil, fmt.Errorf("login_timeout: must be between 1m and 1h, got %s", cfg.LoginTimeout)
	}
	if cfg.ClientAddress == nil {
		cfg.ClientAddress = remoteHost
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Marks == nil {
		cfg.Marks = newMarks(usedCapacity)
	}
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}
	return &Handler{cfg: cfg, idp: idp, sessions: sessions, log: log,
		limiter:      newRedeemLimiter(usedCapacity, cfg.LoginTimeout),
		callbackPath: cfg.Path + "/callback"}, nil
}

// Owns reports whether r is for the sign-in endpoints: r.URL.Path is Path or under Path/.
func (h *Handler) Owns(r *http.Request) bool {
	rest, ok := strings.CutPrefix(r.URL.Path, h.cfg.Path) // every request asks: no concatenation
	return ok && (rest == "" || rest[0] == '/')
}

// URLCarriesSecret reports whether r's URL carries a credential (the callback's authorization code, a login's
// handoff binding), so that no access log may record it.
func (h *Handler) URLCarriesSecret(r *http.Request) bool {
	return r.URL.Path == h.callbackPath || r.URL.Path == h.cfg.Path+"/login" && r.URL.Query().Has("binding")
}

// ServeHTTP serves the endpoints under Path.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Content-Type-Options", "nosniff")
	// Keeps the callback's code and the return path out of Referer headers, including office.js's CDN fetch.
	hd.Set("Referrer-Policy", "no-referrer")
	if h.cfg.CORS.Preflight(w, r) {
		return
	}
	h.cfg.CORS.Decorate(w, r)
	endpoint := strings.TrimPrefix(r.URL.Path, h.cfg.Path)
	allow := map[string]string{"/login": "GET", "/callback": "GET", "/logout": "GET, POST", "/me": "GET, HEAD",
		"/handoff": "POST"}[endpoint]
	if allow == "" {
		h.fail(w, r, failure{status: http.StatusNotFound, title: "Not found",
			message: "There is no sign-in endpoint here."}, nil)
		return
	}
	if !methodIn(r.Method, allow) {
		hd.Set("Allow", allow)
		h.fail(w, r, failure{status: http.StatusMethodNotAllowed, title: "Method not allowed",
			message: "This endpoint does not accept " + r.Method + "."}, nil)
		return
	}
	switch endpoint {
	case "/login":
		h.login(w, r)
	case "/callback":
		h.callback(w, r)
	case "/logout":
		h.logout(w, r)
	case "/me":
		h.me(w, r)
	case "/handoff":
		h.handoff(w, r)
	}
}

// origin is the origin r was made to, as the browser sees it.
func origin(r *http.Request) string {
	scheme := "http"
	if session.SecureRequest(r) {
		scheme = "https"
	}
	return scheme + "://" + strings.ToLower(r.Host)
}

// sameOriginOrAllowed reports whether o (an Origin header) is r's own origin or an allowed one.
func (h *Handler) sameOriginOrAllowed(r *http.Request, o string) bool {
	n, err := cors.NormalizeOrigin(o)
	if err != nil {
		return false
	}
	if own, err := cors.NormalizeOrigin(origin(r)); err == nil && n == own {
		return true
	}
	return h.cfg.CORS.Allowed(n)
}

func methodIn(method, list string) bool {
	for _, m := range strings.Split(list, ", ") {
		if m == method {
			return true
		}
	}
	return false
}
