package harness

import (
	"net/http"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// fixedAuthorization is the session control's handler (PathSessControl): it puts a fixed Authorization header on
// the request and drops its Cookie header, then calls next. That is the header work the session route does (its
// downstream token in, its cookie out) and no more: one map write, with its one-element slice, and one delete.
// reverse_proxy's header_up did the same at about 1.5 µs a request in place (its placeholder replacement, the
// Host header it saves and restores, the slices it builds), which the session route's ratio was credited with.
type fixedAuthorization struct {
	Authorization string `json:"authorization"`
}

func init() { caddy.RegisterModule(fixedAuthorization{}) }

func (fixedAuthorization) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.handlers.bench_fixed_authorization",
		New: func() caddy.Module { return new(fixedAuthorization) }}
}

func (h *fixedAuthorization) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	r.Header["Authorization"] = []string{h.Authorization}
	delete(r.Header, "Cookie")
	return next.ServeHTTP(w, r)
}

// Interface guard
var _ caddyhttp.MiddlewareHandler = (*fixedAuthorization)(nil)
