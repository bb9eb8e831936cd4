// Package caddymodule registers the token_injector HTTP handler, its Caddyfile directive and its global option.
//
// A request's path through the handler: ServeHTTP (serve.go) takes the caller's bearer token, the registration's
// callerauth.Validator proves it, the acquire.Engine answers from the per-user tokencache or calls Entra through
// MSAL (acquire/msal.go), and either the downstream token goes upstream in Authorization or contract.Classify
// turns the failure into the error contract's answer.
package caddymodule

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/tokeninjector/caddy-token-injector/internal/callerauth"
	"github.com/tokeninjector/caddy-token-injector/internal/contract"
	"github.com/tokeninjector/caddy-token-injector/internal/cors"
	"github.com/tokeninjector/caddy-token-injector/internal/identity"
	"github.com/tokeninjector/caddy-token-injector/internal/session"
	"github.com/tokeninjector/caddy-token-injector/internal/signin"
	"github.com/tokeninjector/caddy-token-injector/internal/tokencache"
)

func init() {
	caddy.RegisterModule(Handler{})
	caddy.RegisterModule(App{})
}

// Handler gets a downstream token for the validated caller and forwards the request with it. Routes whose
// effective registration is the same (typically the global token_injector option's) share one cache.
//
// The handler sets these placeholders:
//
// Placeholder | Description
// ------------|-------------
// `{http.auth.user.id}` | The caller's object id (oid); Caddy's access log prints it as user_id
// `{http.auth.user.oid}` | The caller's object id (oid)
// `{http.auth.user.tid}` | The caller's tenant id (tid)
// `{http.auth.user.upn}` | The caller's preferred_username, upn or unique_name
// `{http.auth.user.name}` | The caller's display name
// `{http.token_injector.error}` | On a refusal, the contract's error: invalid_token, interaction_required, access_denied, temporarily_unavailable, server_error, or client_closed_request when the client hung up
// `{http.token_injector.reason}` | On an interaction_required or access_denied refusal, its reason (mfa_required, consent_required, login_required, ...)
//
// The user placeholders are set once the caller is proven (a valid token or session), the refusal ones only
// when the handler answers instead of forwarding.
type Handler struct {
	// Scopes are what the upstream API needs, each with its resource: https://graph.microsoft.com/User.Read,
	// api://other/.default or <application id>/<permission>; a bare User.Read is refused when the config loads.
	// The OpenID scopes (openid, profile, offline_access, email) stand alone. Placeholders are resolved when the
	// config is provisioned. Required: at least one.
	Scopes []string `json:"scopes,omitempty"`
	// Registration holds settings for this route alone; each one set here overrides the global token_injector
	// option's. Default: the global option's registration.
	Registration *Registration `json:"registration,omitempty"`
	// AppOnly forwards the app's own token (client credentials) rather than one for the caller: one token per
	// tenant and scope set, cached, renewed in the background and shared by every caller. Scopes must then be
	// one <resource>/.default. The caller's token is still validated. Default: false.
	AppOnly bool `json:"app_only,omitempty"`
	// AllowAnonymous lets an AppOnly route forward requests that carry no token, for a sidecar whose only
	// callers are on loopback; a warning is logged at load when the route is served on another interface.
	// Default: false.
	AllowAnonymous bool `json:"allow_anonymous,omitempty"`
	// RetryBodyLimit bounds, in bytes, the request bodies kept in memory so that a request can be sent again
	// after the upstream's CAE claims challenge. Larger bodies, bodies of unknown length beyond it, and upgrade
	// requests stream upstream and are not retried. Default: 1048576 (1 MiB).
	RetryBodyLimit Number `json:"retry_body_limit,omitempty"`

	app      *App
	state    *registrationState
	callers  callerValidator // state.validator, through an interface for ServeHTTP's tests
	tokens   tokenSource     // state.engine, likewise
	poolKey  string
	scopes   []string // Scopes with placeholders resolved
	scopeKey string
	logger   *zap.Logger

	callerRules  *callerauth.Rules // which proven callers this route takes
	timeout      time.Duration     // this route's bound on each call to Entra
	expiryMargin time.Duration     // how close to expiry a token may be forwarded on this route
	cors         cors.Policy
	answer       contract.Options // how refusals are answered on this route
	kitPath      string           // where the client kit is served (clientkit.go)

	retryBodyLimit   int64  // RetryBodyLimit resolved
	clientID, tenant string // the registration's, for app-only keys
	multiTenant      bool   // tenant organizations or common: tokens come from each caller's tenant

	// Set only when sign-in is configured.
	sessions *session.Manager
	signIn   *signin.Handler
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.token_injector",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision resolves the registration and attaches to its shared state, creating it on first use.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	// The config's app: the global option's registration, and checks that need the whole config (its Start).
	var err error
	if h.app, err = configApp(ctx); err != nil {
		return err
	}
	if err = registerMetrics(ctx); err != nil {
		return fmt.Errorf("token_injector: metrics: %w", err)
	}
	reg := h.app.Registration.overlay(h.Registration)
	set, err := reg.resolve()
	if err != nil {
		return fmt.Errorf("token_injector: %w", err)
	}
	if set.Redis, err = h.app.Redis.resolve(); err != nil {
		return fmt.Errorf("token_injector: %w", err)
	}
	set.InlineSecrets = append(set.InlineSecrets, h.app.Redis.inlineSecrets()...)
	h.scopes = replaceAll(h.Scopes)
	h.scopeKey = tokencache.NormalizeScopes(h.scopes)
	h.poolKey = set.poolKey()
	roots, err := trustedRoots(ctx, &reg)
	if err != nil {
		return fmt.Errorf("token_injector: %w", err)
	}
	val, loaded, err := registrations.LoadOrNew(h.poolKey, func() (caddy.Destructor, error) {
		return newRegistrationState(set, roots, h.logger)
	})
	if err != nil {
		return fmt.Errorf("token_injector: %w", err)
	}
	h.state = val.(*registrationState)
	h.callers, h.tokens = h.state.validator, h.state.engine
	// A reload applies its settings to the state in place, which keeps every cached token and session.
	if err := h.state.apply(ctx, set, roots, h.logger); err != nil {
		return fmt.Errorf("token_injector: %w", err)
	}
	if loaded {
		h.logger.Debug("reusing token cache", zap.Int("entries", h.state.cache.Len()))
	}
	h.timeout, h.expiryMargin = set.Timeout, set.ExpiryMargin
	if err := h.provisionTokenKind(set); err != nil {
		return fmt.Errorf("token_injector: %w", err)
	}
	h.callerRules = &callerauth.Rules{Scopes: set.CallerScopes, Apps: set.CallerApps}
	if set.SignIn != nil && (len(set.CallerScopes) > 0 || len(set.CallerApps) > 0) {
		return errors.New("token_injector: caller_scopes and caller_apps restrict callers' tokens, and sign_in's " +
			"callers have none, so this route would take every signed-in user: give the sign-in its own route")
	}
	if h.cors, err = cors.New(set.AllowedOrigins); err != nil {
		return fmt.Errorf("token_injector: %w", err)
	}
	h.answer = contract.Options{Scopes: h.scopes}
	h.kitPath = kitPath(set.SignIn)
	if set.SignIn != nil {
		return h.provisionSignIn(set.SignIn, set.AuthorityHost)
	}
	return nil
}

// Validate checks the route's own settings; the registration was checked in Provision, where placeholders resolve.
func (h *Handler) Validate() error {
	if err := validateScopes(h.scopes); err != nil {
		return fmt.Errorf("token_injector: %w", err)
	}
	return nil
}

func validateScopes(scopes []string) error {
	if len(scopes) == 0 {
		return errors.New("scopes: at least one scope is required (e.g. https://graph.microsoft.com/User.Read)")
	}
	for _, s := range scopes {
		if err := checkScope(s); err != nil {
			return err
		}
	}
	return nil
}

// oidcScopes are the scopes that stand alone: they name no resource.
var oidcScopes = map[string]bool{"openid": true, "profile": true, "offline_access": true, "email": true}

// checkScope refuses a scope without its resource, such as User.Read: Entra would take it as Microsoft Graph's,
// which is a guess the config should not leave to it.
func checkScope(s string) error {
	switch {
	case s == "" || strings.ContainsAny(s, " \t\r\n\"\\"):
		return fmt.Errorf("scopes: %q is not a scope", s)
	case oidcScopes[strings.ToLower(s)] || hasResource(s):
		return nil
	case !strings.ContainsAny(s, "/:"):
		return fmt.Errorf("scopes: %q names no resource; write the full form, such as https://graph.microsoft.com/%s", s, s)
	}
	return fmt.Errorf("scopes: %q is not <resource>/<permission>; write the full form, such as "+
		"https://graph.microsoft.com/User.Read or api://<application id>/.default", s)
}

// hasResource reports whether s is <resource>/<permission>, the resource a URI with a scheme
// (https://graph.microsoft.com, api://downstream) or an application ID.
func hasResource(s string) bool {
	if scheme, rest, ok := strings.Cut(s, "://"); ok {
		i := strings.LastIndexByte(rest, '/')
		return isScheme(scheme) && i > 0 && i < len(rest)-1
	}
	app, perm, ok := strings.Cut(s, "/")
	return ok && identity.IsGUID(app) && perm != ""
}

func isScheme(s string) bool {
	for i, c := range s {
		letter := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
		if !letter && (i == 0 || !(c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.')) {
			return false
		}
	}
	return s != ""
}

// Cleanup releases this config's hold on the shared state. Provision may have stopped half way.
func (h *Handler) Cleanup() error {
	if h.poolKey == "" || h.state == nil {
		return nil
	}
	_, err := registrations.Delete(h.poolKey)
	return err
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
