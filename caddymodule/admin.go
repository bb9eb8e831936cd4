package caddymodule

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/tokeninjector/caddy-token-injector/internal/identity"
	"github.com/tokeninjector/caddy-token-injector/internal/tokencache"
)

func init() {
	caddy.RegisterModule(adminAPI{})
}

// adminAPI serves the token_injector endpoints of Caddy's admin API:
//
//	GET    /token_injector/registrations                  every registration's stats (nothing secret)
//	DELETE /token_injector/registrations/<id>/tokens      flush a registration's token cache
//	DELETE /token_injector/users/<oid>.<tid>              sign a user out everywhere: tokens, account, sessions
//
// Admin routers get no config and are provisioned before apps, so it reads the registrations' shared state from
// the package's pool, which outlives config loads. Errors are Caddy's admin JSON, {"error": "..."}.
type adminAPI struct{}

// CaddyModule returns the Caddy module information.
func (adminAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.token_injector",
		New: func() caddy.Module { return new(adminAPI) },
	}
}

const adminPrefix = "/token_injector/"

// Routes implements caddy.AdminRouter.
func (a adminAPI) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{{Pattern: adminPrefix, Handler: caddy.AdminHandlerFunc(a.serve)}}
}

// adminTimeout bounds one admin call's store operations (a Redis tier's DeleteUser across replicas).
const adminTimeout = 10 * time.Second

func (a adminAPI) serve(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithTimeout(r.Context(), adminTimeout)
	defer cancel()
	parts := strings.Split(strings.Trim(strings.TrimPrefix(r.URL.Path, adminPrefix), "/"), "/")
	switch {
	case len(parts) == 1 && parts[0] == "registrations":
		return allow(r, http.MethodGet, func() error { return writeJSON(w, registrationStats()) })
	case len(parts) == 3 && parts[0] == "registrations" && parts[2] == "tokens":
		return allow(r, http.MethodDelete, func() error { return flushRegistration(ctx, w, parts[1]) })
	case len(parts) == 2 && parts[0] == "users":
		return allow(r, http.MethodDelete, func() error { return signOutEverywhere(ctx, w, parts[1]) })
	}
	return apiError(http.StatusNotFound, "no such token_injector endpoint: GET registrations, "+
		"DELETE registrations/ID/tokens, DELETE users/OID.TID")
}

func allow(r *http.Request, method string, serve func() error) error {
	if r.Method != method {
		return apiError(http.StatusMethodNotAllowed, "method not allowed: use "+method)
	}
	return serve()
}

// registrationInfo is one registration's entry in GET /token_injector/registrations.
type registrationInfo struct {
	ID              string `json:"id"`
	AuthorityHost   string `json:"authority_host"`
	Tenant          string `json:"tenant"`
	ClientID        string `json:"client_id"`
	CacheEntries    int    `json:"cache_entries"`
	CacheMaxEntries int    `json:"cache_max_entries"`
	// Sessions is omitted when the session store cannot count (a shared tier).
	Sessions *int        `json:"sessions,omitempty"`
	Engine   engineStats `json:"engine"`
}

// engineStats are the engine's counters since the registration was created (it survives reloads).
type engineStats struct {
	CacheHits          int64 `json:"cache_hits"`
	ProviderCalls      int64 `json:"identity_provider_calls"`
	ProviderErrors     int64 `json:"identity_provider_errors"`
	BackgroundRenewals int64 `json:"background_renewals"`
}

func registrationStats() []registrationInfo {
	out := []registrationInfo{}
	eachRegistration(func(id string, s *registrationState) {
		s.mu.Lock()
		info := registrationInfo{ID: id, AuthorityHost: s.applied.AuthorityHost, Tenant: s.applied.Tenant,
			ClientID: s.applied.ClientID, CacheMaxEntries: s.applied.CacheMaxEntries}
		s.mu.Unlock()
		info.CacheEntries = s.cache.Len()
		if n := countSessions(s.sessions); n >= 0 {
			info.Sessions = &n
		}
		st := s.engine.Stats()
		info.Engine = engineStats{CacheHits: st.CacheHits, ProviderCalls: st.ProviderCalls,
			ProviderErrors: st.ProviderErrors, BackgroundRenewals: st.BackgroundRefreshes}
		out = append(out, info)
	})
	return out
}

func flushRegistration(ctx context.Context, w http.ResponseWriter, id string) error {
	var found *registrationState
	eachRegistration(func(rid string, s *registrationState) {
		if rid == id {
			found = s
		}
	})
	if found == nil {
		return apiError(http.StatusNotFound, fmt.Sprintf("no registration %q: GET /token_injector/registrations lists them", id))
	}
	var store tokencache.TokenStore = found.cache
	if found.shared != nil {
		store = found.shared.cache // Redis and every replica's memory
	}
	flusher, ok := store.(tokencache.Flusher)
	if !ok {
		return apiError(http.StatusNotImplemented, "this registration's token cache cannot be flushed")
	}
	n, err := flusher.Flush(ctx)
	if err != nil {
		return apiError(http.StatusServiceUnavailable, "flushing the token cache failed: "+err.Error())
	}
	return writeJSON(w, map[string]any{"registration": id, "tokens_deleted": n})
}

// signOutEverywhere forgets a user's tokens, account (refresh state) and sessions in every registration. The user
// is named as the proxy keys them, "<oid>.<tid>" (MSAL's home account id): the oid is what Caddy's access log
// prints as user_id, the tid is {http.auth.user.tid}. The stores' DeleteUser reaches every replica of a shared tier.
func signOutEverywhere(ctx context.Context, w http.ResponseWriter, user string) error {
	oid, tid, ok := strings.Cut(user, ".")
	if !ok || !identity.IsGUID(oid) || !identity.IsGUID(tid) {
		return apiError(http.StatusBadRequest, "a user is OID.TID: the object id and the tenant id, both GUIDs, joined by a dot")
	}
	user = identity.Key(strings.ToLower(oid), strings.ToLower(tid))
	regs, sessions := 0, 0
	var errs []error
	eachRegistration(func(id string, s *registrationState) {
		regs++
		if err := s.engine.SignOut(ctx, user); err != nil {
			errs = append(errs, fmt.Errorf("registration %s: tokens: %w", id, err))
		}
		n, err := s.sessions.DeleteUser(ctx, user)
		sessions += n
		if err != nil {
			errs = append(errs, fmt.Errorf("registration %s: sessions: %w", id, err))
		}
	})
	if err := errors.Join(errs...); err != nil {
		return apiError(http.StatusServiceUnavailable, "signing the user out failed, retry: "+err.Error())
	}
	return writeJSON(w, map[string]any{"user": user, "registrations": regs, "sessions_deleted": sessions})
}

// eachRegistration calls f for every registration a config load has applied settings to.
func eachRegistration(f func(id string, s *registrationState)) {
	registrations.Range(func(_, v any) bool {
		s := v.(*registrationState)
		if id := s.id(); id != "" {
			f(id, s)
		}
		return true
	})
}

func writeJSON(w http.ResponseWriter, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	return json.NewEncoder(w).Encode(v)
}

func apiError(status int, msg string) error {
	return caddy.APIError{HTTPStatus: status, Err: errors.New(msg)}
}

// Interface guards
var _ caddy.AdminRouter = (*adminAPI)(nil)
