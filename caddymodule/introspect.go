package caddymodule

import (
	"context"

	"github.com/tokeninjector/caddy-token-injector/internal/callerauth"
	"github.com/tokeninjector/caddy-token-injector/internal/session"
	"github.com/tokeninjector/caddy-token-injector/internal/tokencache"
)

// What a provisioned handler's registration holds, for the benchmark suite (bench/) and tooling of this module:
// the packages they return are internal, so nothing outside the module can reach them.

// CallerStats reports the registration's proven-token cache and its RSA verifications so far.
func (h *Handler) CallerStats() callerauth.ProvenStats { return h.state.validator.Stats() }

// ProveCaller proves a caller token as a request's would be, and remembers it as proven.
func (h *Handler) ProveCaller(ctx context.Context, token string) (*callerauth.Identity, error) {
	return h.state.validator.Validate(ctx, token, h.callerRules)
}

// TokenCache is the registration's in-memory token cache.
func (h *Handler) TokenCache() *tokencache.Memory { return h.state.cache }

// SessionManager is the route's session manager over the registration's session store; nil without sign_in.
func (h *Handler) SessionManager() *session.Manager { return h.sessions }
