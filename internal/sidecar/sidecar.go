// Package sidecar serves the Entra auth sidecar's HTTP contract (AzureAD/microsoft-identity-web,
// src/Microsoft.Identity.Web.Sidecar) for the application beside it: GET /AuthorizationHeader/{apiName},
// /AuthorizationHeaderUnauthenticated/{apiName}, /Validate and /healthz, with the same optionsOverride query
// parameters and "allow overrides" switches. Next to it, a transparent mode the Entra sidecar lacks:
// /{apiName}/... is proxied to the API's base URL with the token injected.
//
// Tokens come from the acquisition engine (one identity-provider call per user or app and scope set), refusals
// are decided by package contract, and only loopback callers are served unless more networks are allowed.
package sidecar

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/tokeninjector/caddy-token-injector/internal/acquire"
	"github.com/tokeninjector/caddy-token-injector/internal/callerauth"
	"github.com/tokeninjector/caddy-token-injector/internal/contract"
	"github.com/tokeninjector/caddy-token-injector/internal/health"
	"github.com/tokeninjector/caddy-token-injector/internal/tokencache"
)

// Paths of the Entra auth sidecar (Endpoints/*.cs, LocalCallerRestriction.cs) and our readiness path.
const (
	PathAuthorizationHeader                = "/AuthorizationHeader/"
	PathAuthorizationHeaderUnauthenticated = "/AuthorizationHeaderUnauthenticated/"
	PathValidate                           = "/Validate"
	PathHealth                             = "/healthz"
	PathReady                              = "/readyz"
)

// Callers proves callers' tokens; *callerauth.Validator implements it.
type Callers interface {
	Validate(ctx context.Context, raw string, route *callerauth.Rules) (*callerauth.Identity, error)
}

// Tokens gets downstream tokens; *acquire.Engine implements it.
type Tokens interface {
	Token(ctx context.Context, req acquire.Request) (tokencache.Token, error)
}

// Overrides are the Entra sidecar's Sidecar:AllowOverrides switches (Configuration/SidecarOptions.cs) for the
// endpoints served here: whether optionsOverride.* query parameters are honoured (when not, they are ignored
// and a warning is logged, as there).
type Overrides struct {
	// AuthorizationHeader is GetAuthorizationHeader; the Entra sidecar's default is true.
	AuthorizationHeader bool
	// AuthorizationHeaderUnauthenticated is GetAuthorizationHeaderUnauthenticated; its default is false.
	AuthorizationHeaderUnauthenticated bool
}

// DefaultOverrides are the Entra sidecar's defaults.
var DefaultOverrides = Overrides{AuthorizationHeader: true}

// Config sets up a Server.
type Config struct {
	APIs      []API
	Overrides Overrides
	// AllowedNetworks are callers' networks served besides loopback. Default: none, loopback only.
	AllowedNetworks []netip.Prefix
	// Transparent turns on the /{apiName}/... proxy for APIs with a BaseURL.
	Transparent bool
	Callers     Callers
	Tokens      Tokens
	// ClientID and Tenant are the registration's: the app's own tokens are cached under them.
	ClientID, Tenant string
	// Rules are the conditions on proven callers (the Entra sidecar's AzureAd:Scopes check on /Validate).
	// Default: nil, any proven caller.
	Rules *callerauth.Rules
	// Timeout and ExpiryMargin are passed to the engine with each request.
	Timeout, ExpiryMargin time.Duration
	// Ready are the readiness checks behind /readyz.
	Ready []health.Check
	// Transport carries the transparent proxy's requests. Default: a clone of http.DefaultTransport.
	Transport http.RoundTripper
	Logger    *zap.Logger
}

// Server is an http.Handler for the sidecar's endpoints; New builds it.
type Server struct {
	cfg    Config
	apis   map[string]*API
	logger *zap.Logger
}

// New checks cfg and returns its Server.
func New(cfg Config) (*Server, error) {
	if cfg.Callers == nil || cfg.Tokens == nil {
		return nil, errors.New("sidecar: callers and tokens are required")
	}
	s := &Server{cfg: cfg, apis: map[string]*API{}, logger: cfg.Logger}
	if s.logger == nil {
		s.logger = zap.NewNop()
	}
	for i := range cfg.APIs {
		a := &cfg.APIs[i]
		if err := a.check(); err != nil {
			return nil, err
		}
		if _, dup := s.apis[a.Name]; dup {
			return nil, fmt.Errorf("api %q: defined twice", a.Name)
		}
		a.scopeKey = tokencache.NormalizeScopes(a.Scopes)
		s.apis[a.Name] = a
	}
	if cfg.Transparent {
		s.cfg.Transport = proxyTransport(cfg.Transport)
	}
	return s, nil
}

// ServeHTTP routes a request to its endpoint. Endpoint paths match case-insensitively, as ASP.NET Core routes
// do; API names are case-sensitive, as named options are. Health probes are served to every caller
// (orchestrators probe the pod's address, as LocalCallerRestriction.cs allows); everything else only to local
// callers.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	switch {
	case strings.EqualFold(path, PathHealth):
		health.ServeLive(w)
		return
	case strings.EqualFold(path, PathReady):
		health.ServeReady(w, r, 5*time.Second, s.cfg.Ready)
		return
	}
	if !s.allowed(r) {
		s.refuse(w, r, contract.CallerNotAllowed())
		return
	}
	if strings.EqualFold(path, PathValidate) {
		s.onlyGET(w, r, s.serveValidate)
		return
	}
	if name, ok := cutPrefixFold(path, PathAuthorizationHeader); ok {
		s.onlyGET(w, r, func(w http.ResponseWriter, r *http.Request) { s.serveAuthorizationHeader(w, r, name, false) })
		return
	}
	if name, ok := cutPrefixFold(path, PathAuthorizationHeaderUnauthenticated); ok {
		s.onlyGET(w, r, func(w http.ResponseWriter, r *http.Request) { s.serveAuthorizationHeader(w, r, name, true) })
		return
	}
	if s.cfg.Transparent {
		s.serveProxy(w, r)
		return
	}
	s.refuse(w, r, contract.NotFound("no such endpoint"))
}

func (s *Server) onlyGET(w http.ResponseWriter, r *http.Request, serve http.HandlerFunc) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		s.refuse(w, r, contract.MethodNotAllowed("this endpoint takes GET"))
		return
	}
	serve(w, r)
}

// allowed reports whether the caller connects from loopback or an allowed network. A Unix socket peer has no IP
// address and is local, as in LocalCallerRestriction.IsLocal.
func (s *Server) allowed(r *http.Request) bool {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr == "" || r.RemoteAddr == "@"
	}
	ip := ap.Addr().Unmap()
	if ip.IsLoopback() {
		return true
	}
	for _, p := range s.cfg.AllowedNetworks {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// refuse answers with p, in the Entra sidecar's problem-details shape, and logs what the operator must read.
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, p *contract.Problem) {
	p.WriteProblemDetails(w)
	p.Log(s.logger, r)
}

// fail maps a token or validation error through the contract.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error, scopes []string) {
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		w.WriteHeader(499) // the client went away, as reverse_proxy logs it
		return
	}
	s.refuse(w, r, contract.Decide(err, scopes))
}

// appKey is the cache key of the app's own token in tenant ("" for the registration's).
func (s *Server) appKey(tenant, scopeKey string) tokencache.Key {
	return tokencache.Key{User: tokencache.AppUser(s.cfg.ClientID, cmp.Or(tenant, s.cfg.Tenant)), Scopes: scopeKey}
}

// bearer returns the credentials of an "Authorization: Bearer" header.
func bearer(r *http.Request) (string, bool) {
	scheme, token, found := strings.Cut(r.Header.Get("Authorization"), " ")
	if !found || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

var errMissingBearer = &callerauth.InvalidTokenError{Description: "missing bearer token"}

// prove validates the caller's bearer token under the rules.
func (s *Server) prove(r *http.Request) (*callerauth.Identity, string, error) {
	raw, ok := bearer(r)
	if !ok {
		return nil, "", errMissingBearer
	}
	id, err := s.cfg.Callers.Validate(r.Context(), raw, s.cfg.Rules)
	return id, raw, err
}
