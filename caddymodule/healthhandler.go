package caddymodule

import (
	"fmt"
	"net/http"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/tokeninjector/caddy-token-injector/internal/health"
)

func init() {
	caddy.RegisterModule(HealthHandler{})
	httpcaddyfile.RegisterHandlerDirective("token_injector_health", parseHealth)
	httpcaddyfile.RegisterDirectiveOrder("token_injector_health", httpcaddyfile.Before, "respond")
}

// HealthHandler answers container probes for a deployment that uses the token_injector directive rather than
// the sidecar: "live" answers 200 Healthy while the process serves; "ready" runs the registration's readiness
// checks (signing keys held, Entra reachable recently, and the Redis tier's when configured) and answers 200 or
// 503 with a JSON report. It never calls the next handler.
type HealthHandler struct {
	// Probe is "live" or "ready". Default: ready.
	Probe string `json:"probe,omitempty"`
	// Registration selects the registration whose checks run, as the token_injector handler's does. Default:
	// the global token_injector option's.
	Registration *Registration `json:"registration,omitempty"`

	inner  Handler
	checks []health.Check
}

// CaddyModule returns the Caddy module information.
func (HealthHandler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.token_injector_health",
		New: func() caddy.Module { return new(HealthHandler) },
	}
}

// Provision attaches to the registration's shared state for its readiness checks.
func (h *HealthHandler) Provision(ctx caddy.Context) error {
	switch h.Probe {
	case "":
		h.Probe = "ready"
	case "live", "ready":
	default:
		return fmt.Errorf("token_injector_health: probe %q is not live or ready", h.Probe)
	}
	if h.Probe == "live" {
		return nil
	}
	h.inner = Handler{Registration: h.Registration}
	if err := h.inner.Provision(ctx); err != nil {
		return fmt.Errorf("token_injector_health: %w", err)
	}
	h.checks = h.inner.state.readinessChecks()
	return nil
}

// ServeHTTP answers the probe.
func (h *HealthHandler) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	if h.Probe == "live" {
		health.ServeLive(w)
		return nil
	}
	health.ServeReady(w, r, 5*time.Second, h.checks)
	return nil
}

// Cleanup releases the registration's shared state.
func (h *HealthHandler) Cleanup() error { return h.inner.Cleanup() }

func parseHealth(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	m := new(HealthHandler)
	err := m.UnmarshalCaddyfile(h.Dispenser)
	return m, err
}

// UnmarshalCaddyfile sets up the probe. Syntax:
//
//	token_injector_health [<matcher>] [live|ready] {
//		# the registration subdirectives of token_injector, for a route with its own registration
//	}
func (h *HealthHandler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		h.Probe = d.Val()
		if h.Probe != "live" && h.Probe != "ready" {
			return d.Errf("token_injector_health: %q is not live or ready", h.Probe)
		}
	}
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		if h.Registration == nil {
			h.Registration = new(Registration)
		}
		if err := h.Registration.unmarshalSubdirective(d); err != nil {
			return err
		}
	}
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner           = (*HealthHandler)(nil)
	_ caddy.CleanerUpper          = (*HealthHandler)(nil)
	_ caddyhttp.MiddlewareHandler = (*HealthHandler)(nil)
	_ caddyfile.Unmarshaler       = (*HealthHandler)(nil)
)
