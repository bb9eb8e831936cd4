package caddymodule

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/tokeninjector/caddy-token-injector/internal/acquire"
	"github.com/tokeninjector/caddy-token-injector/internal/entra"
	"github.com/tokeninjector/caddy-token-injector/internal/tokencache"
)

// proveForApp is prove for an app_only route: the caller's token is validated as on any route (unless the route
// allows anonymous callers and there is none), but the token forwarded is the app's own, one per tenant and scope
// set, which every caller shares.
func (h *Handler) proveForApp(r *http.Request) (acquire.Request, error) {
	tenant := h.tenant
	if assertion, ok := bearerToken(r); ok {
		id, err := h.proveToken(r, assertion)
		if err != nil {
			return acquire.Request{}, err
		}
		if h.multiTenant {
			tenant = id.TenantID // the app's token in the caller's tenant, where its admin consented
		}
	} else if !h.AllowAnonymous {
		return acquire.Request{}, errMissingBearer
	}
	key := tokencache.Key{User: tokencache.AppUser(h.clientID, tenant), Scopes: h.scopeKey}
	return acquire.Request{Key: key, Scopes: h.scopes, AppOnly: true, Tenant: h.callerTenant(tenant),
		Timeout: h.timeout, ExpiryMargin: h.expiryMargin}, nil
}

// callerTenant is the tenant a caller's token must be got in: its own on a multi-tenant registration, else the
// registration's ("").
func (h *Handler) callerTenant(tid string) string {
	if h.multiTenant {
		return tid
	}
	return ""
}

// checkAppOnlyScopes enforces Entra's rule for client credentials: one scope, a resource's .default.
func checkAppOnlyScopes(scopes []string) error {
	if len(scopes) != 1 || !strings.HasSuffix(scopes[0], "/.default") {
		return errAppOnlyScopes
	}
	return nil
}

var errAppOnlyScopes = errors.New("app_only: scopes must be one <resource>/.default, such as https://graph.microsoft.com/.default (the app's token carries the application permissions an admin granted)")

// warnAnonymousOffLoopback logs, at load, each server that serves an allow_anonymous route on an interface other
// than loopback: anyone who reaches it gets the app's token used on their behalf.
func (a *App) warnAnonymousOffLoopback() {
	if a.ctx.Context == nil {
		return
	}
	app, err := a.ctx.AppIfConfigured("http")
	if err != nil {
		return
	}
	httpApp, ok := app.(*caddyhttp.App)
	if !ok {
		return
	}
	for name, srv := range httpApp.Servers {
		if hasAnonymousRoute(srv.Routes) && !loopbackOnly(srv.Listen) {
			a.ctx.Logger().Warn("allow_anonymous: an app_only route takes callers without a token on a non-loopback "+
				"listener; anyone who reaches it gets the app's permissions. Listen on 127.0.0.1 (a sidecar) or drop allow_anonymous",
				zap.String("server", name), zap.Strings("listen", srv.Listen))
		}
	}
}

// hasAnonymousRoute reports whether routes (or their subroutes) hold an allow_anonymous handler.
func hasAnonymousRoute(routes caddyhttp.RouteList) bool {
	for _, rt := range routes {
		for _, mh := range rt.Handlers {
			switch h := mh.(type) {
			case *Handler:
				if h.AllowAnonymous {
					return true
				}
			case *caddyhttp.Subroute:
				if hasAnonymousRoute(h.Routes) {
					return true
				}
			}
		}
	}
	return false
}

// loopbackOnly reports whether every listener address is loopback (or a unix socket). No address is Caddy's
// default, every interface.
func loopbackOnly(listen []string) bool {
	if len(listen) == 0 {
		return false
	}
	for _, l := range listen {
		na, err := caddy.ParseNetworkAddress(l)
		if err != nil {
			return false
		}
		if na.IsUnixNetwork() {
			continue
		}
		ip := net.ParseIP(na.Host)
		if na.Host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return false
		}
	}
	return true
}

// provisionTokenKind resolves the route's app_only, allow_anonymous and retry_body_limit, and what its tokens'
// keys and tenants need from the registration.
func (h *Handler) provisionTokenKind(set settings) error {
	h.clientID, h.tenant, h.multiTenant = set.ClientID, set.Tenant, entra.IsMultiTenant(set.Tenant)
	limit, err := h.RetryBodyLimit.resolve(caddy.NewReplacer(), "retry_body_limit", defaultRetryBodyLimit)
	if err != nil {
		return err
	}
	h.retryBodyLimit = int64(limit)
	switch {
	case h.AllowAnonymous && !h.AppOnly:
		return errors.New("allow_anonymous: only for app_only routes (a caller without a token has no user to act for)")
	case h.AllowAnonymous && h.multiTenant:
		return fmt.Errorf("allow_anonymous: tenant %s: an anonymous caller names no tenant to get the app's token in; name the tenant", set.Tenant)
	case h.AppOnly:
		return checkAppOnlyScopes(replaceAll(h.Scopes))
	}
	return nil
}
