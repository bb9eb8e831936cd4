package caddymodule

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/tokeninjector/caddy-token-injector/internal/sidecar"
)

func init() { caddy.RegisterModule(Sidecar{}) }

// Sidecar serves the Entra auth sidecar's endpoints for the application beside it, with this module's cache and
// error contract: GET /AuthorizationHeader/{api}, /AuthorizationHeaderUnauthenticated/{api}, /Validate, /healthz
// (liveness) and /readyz (readiness), and with transparent, /{api}/... proxied with the token injected. It
// answers every request itself and never calls the next handler. Only loopback callers are served, except for
// the health paths, unless allowed_networks says otherwise.
type Sidecar struct {
	// APIs are the named downstream APIs (the Entra sidecar's DownstreamApis).
	APIs []SidecarAPI `json:"apis,omitempty"`
	// APIList adds APIs written in one string, usually a placeholder such as {env.TOKEN_INJECTOR_APIS}:
	// "<name> [base_url=<url>] [app_token] <scope>... ; <name> ...". Resolved when the config loads. Default: none.
	APIList string `json:"api_list,omitempty"`
	// AllowOverrides are the Entra sidecar's Sidecar:AllowOverrides switches. Default: overrides honoured on
	// /AuthorizationHeader, ignored on /AuthorizationHeaderUnauthenticated.
	AllowOverrides *SidecarOverrides `json:"allow_overrides,omitempty"`
	// AllowedNetworks are CIDR ranges of callers served besides loopback; a placeholder may hold several,
	// separated by spaces or commas. Default: none.
	AllowedNetworks []string `json:"allowed_networks,omitempty"`
	// Transparent turns on /{api}/... proxying for APIs with a base_url. Default: off.
	Transparent bool `json:"transparent,omitempty"`
	// Registration holds settings for this sidecar alone, as the token_injector handler's does. Default: the
	// global token_injector option's registration.
	Registration *Registration `json:"registration,omitempty"`

	inner  Handler // the registration's shared state, provisioned as a token_injector route's
	server *sidecar.Server
}

// SidecarAPI is one named downstream API.
type SidecarAPI struct {
	// Name is the {api} of the paths.
	Name string `json:"name"`
	// Scopes are what the API needs, each with its resource. Required.
	Scopes []string `json:"scopes,omitempty"`
	// BaseURL is where transparent mode sends /{api}/...; empty: not proxied. Default: empty.
	BaseURL string `json:"base_url,omitempty"`
	// AppToken gets the app's own token (client credentials) for this API, also on /AuthorizationHeader and in
	// transparent mode (the Entra sidecar's RequestAppToken). Default: false, the caller's On-Behalf-Of token.
	AppToken bool `json:"app_token,omitempty"`
}

// SidecarOverrides are the switches for optionsOverride.* query parameters.
type SidecarOverrides struct {
	// AuthorizationHeader: honoured on /AuthorizationHeader. Default: true.
	AuthorizationHeader *bool `json:"authorization_header,omitempty"`
	// AuthorizationHeaderUnauthenticated: honoured on /AuthorizationHeaderUnauthenticated. Default: false.
	AuthorizationHeaderUnauthenticated *bool `json:"authorization_header_unauthenticated,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (Sidecar) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.token_injector_sidecar",
		New: func() caddy.Module { return new(Sidecar) },
	}
}

// Provision attaches to the registration's shared state (cache, engine, validator) and builds the endpoints.
func (s *Sidecar) Provision(ctx caddy.Context) error {
	s.inner = Handler{Registration: s.Registration}
	if err := s.inner.Provision(ctx); err != nil {
		return fmt.Errorf("token_injector_sidecar: %w", err)
	}
	cfg, err := s.config()
	if err != nil {
		return fmt.Errorf("token_injector_sidecar: %w", err)
	}
	cfg.Callers, cfg.Tokens, cfg.Rules = s.inner.callers, s.inner.tokens, s.inner.callerRules
	cfg.Timeout, cfg.ExpiryMargin, cfg.Logger = s.inner.timeout, s.inner.expiryMargin, s.inner.logger
	cfg.Ready = s.inner.state.readinessChecks()
	s.inner.state.mu.Lock()
	cfg.ClientID, cfg.Tenant = s.inner.state.applied.ClientID, s.inner.state.applied.Tenant
	s.inner.state.mu.Unlock()
	if s.server, err = sidecar.New(cfg); err != nil {
		return fmt.Errorf("token_injector_sidecar: %w", err)
	}
	return nil
}

// config resolves the placeholders and defaults of the sidecar's own settings.
func (s *Sidecar) config() (sidecar.Config, error) {
	cfg := sidecar.Config{Overrides: sidecar.DefaultOverrides, Transparent: s.Transparent}
	for _, a := range s.APIs {
		scopes := replaceAll(a.Scopes)
		if err := validateScopes(scopes); err != nil {
			return cfg, fmt.Errorf("api %q: %w", a.Name, err)
		}
		cfg.APIs = append(cfg.APIs, sidecar.API{Name: a.Name, Scopes: scopes, BaseURL: resolveText(caddy.NewReplacer(), a.BaseURL),
			RequestAppToken: a.AppToken})
	}
	if s.APIList != "" {
		listed, err := sidecar.ParseAPIs(resolveText(caddy.NewReplacer(), s.APIList))
		if err != nil {
			return cfg, fmt.Errorf("api_list: %w", err)
		}
		for _, a := range listed {
			if err := validateScopes(a.Scopes); err != nil {
				return cfg, fmt.Errorf("api_list: api %q: %w", a.Name, err)
			}
		}
		cfg.APIs = append(cfg.APIs, listed...)
	}
	if o := s.AllowOverrides; o != nil {
		if o.AuthorizationHeader != nil {
			cfg.Overrides.AuthorizationHeader = *o.AuthorizationHeader
		}
		if o.AuthorizationHeaderUnauthenticated != nil {
			cfg.Overrides.AuthorizationHeaderUnauthenticated = *o.AuthorizationHeaderUnauthenticated
		}
	}
	var networks []string // a placeholder may hold several, as "10.0.0.0/8 192.168.0.0/16"
	for _, v := range replaceAll(s.AllowedNetworks) {
		networks = append(networks, strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' })...)
	}
	for _, n := range networks {
		p, err := netip.ParsePrefix(n)
		if err != nil {
			return cfg, fmt.Errorf("allowed_networks: %q is not a CIDR range such as 10.0.0.0/8", n)
		}
		cfg.AllowedNetworks = append(cfg.AllowedNetworks, p.Masked())
	}
	return cfg, nil
}

// ServeHTTP answers the request; the sidecar is a terminal handler.
func (s *Sidecar) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	s.server.ServeHTTP(w, r)
	return nil
}

// Cleanup releases the registration's shared state.
func (s *Sidecar) Cleanup() error { return s.inner.Cleanup() }

// Interface guards
var (
	_ caddy.Provisioner           = (*Sidecar)(nil)
	_ caddy.CleanerUpper          = (*Sidecar)(nil)
	_ caddyhttp.MiddlewareHandler = (*Sidecar)(nil)
)
