package harness

import (
	"context"
	"fmt"
	"net/http/httptest"

	"github.com/tokeninjector/caddy-token-injector/caddymodule"
	"github.com/tokeninjector/caddy-token-injector/internal/callerauth"
	"github.com/tokeninjector/caddy-token-injector/internal/dev/entraemu"
	"github.com/tokeninjector/caddy-token-injector/internal/session"
	"github.com/tokeninjector/caddy-token-injector/internal/tokencache"
)

// What the scale items need from the provisioned handlers: their registration's counters and caches, and
// sessions made without the sign-in flow (which redeems codes at a bounded rate, by design: 50,000 sign-ins take
// half an hour).

// CapturedHandler is the token_injector handler captured under name.
func CapturedHandler(name string) (*caddymodule.Handler, error) {
	h, err := Captured(name)
	if err != nil {
		return nil, err
	}
	ti, ok := h.(*caddymodule.Handler)
	if !ok {
		return nil, fmt.Errorf("captured %q is a %T, not token_injector", name, h)
	}
	return ti, nil
}

// CallerStats is the proven-token cache and RSA verification count of the captured handler's registration.
func CallerStats(name string) (callerauth.ProvenStats, error) {
	h, err := CapturedHandler(name)
	if err != nil {
		return callerauth.ProvenStats{}, err
	}
	return h.CallerStats(), nil
}

// CreateSessions starts a session for each user in the store of the captured sign_in handler name, as its
// callback would after a sign-in, and returns each one's cookie as "name=value" for this Env's origin. The users'
// downstream tokens must be cached already for their bearer tokens (SeedTokens, or warming them); each is copied
// to the session's own partition (tokencache.SessionContext), as the sign-in's redemption would have cached one.
func (e *Env) CreateSessions(name string, users []entraemu.User) ([]string, error) {
	h, err := CapturedHandler(name)
	if err != nil {
		return nil, err
	}
	m := h.SessionManager()
	if m == nil {
		return nil, fmt.Errorf("captured %q has no sign_in", name)
	}
	ctx := context.Background()
	scopes := tokencache.NormalizeScopes([]string{GraphScope})
	cookies := make([]string, len(users))
	for i, u := range users {
		bearer := tokencache.Key{User: e.userKey(u.ObjectID), Scopes: scopes}
		tok, ok, err := h.TokenCache().Get(ctx, bearer)
		if err != nil || !ok {
			return nil, fmt.Errorf("no cached token for %s to give its session (%v)", u.ObjectID, err)
		}
		bearer.Context = tokencache.SessionContext
		if err := h.TokenCache().Set(ctx, bearer, tok); err != nil {
			return nil, err
		}
		w := httptest.NewRecorder()
		r := httptest.NewRequest("GET", e.Origin()+PathSess+"me", nil)
		if _, err := m.Create(w, r, session.Session{UserKey: e.userKey(u.ObjectID),
			ObjectID: u.ObjectID, TenantID: entraemu.DefaultTenantID, Username: u.UPN, Name: u.Name}); err != nil {
			return nil, err
		}
		c := w.Result().Cookies()
		if len(c) != 1 {
			return nil, fmt.Errorf("session for %s: %d cookies set", u.Key, len(c))
		}
		cookies[i] = c[0].Name + "=" + c[0].Value
	}
	return cookies, nil
}

// DownstreamHeaders returns the Authorization header the captured sign_in handler name sends upstream for each
// signed-in user (by object id): the session's cached downstream token. A fair control route carries the same
// header.
func DownstreamHeaders(name string, oids []string) ([]string, error) {
	h, err := CapturedHandler(name)
	if err != nil {
		return nil, err
	}
	scopes := tokencache.NormalizeScopes([]string{GraphScope})
	out := make([]string, len(oids))
	for i, oid := range oids {
		t, ok, err := h.TokenCache().Get(context.Background(),
			tokencache.Key{User: tokencache.UserKey(oid, entraemu.DefaultTenantID), Context: tokencache.SessionContext, Scopes: scopes})
		if err != nil || !ok {
			return nil, fmt.Errorf("no cached token for %s (%v)", oid, err)
		}
		out[i] = t.AuthorizationHeader()
	}
	return out, nil
}

// SeedTokens proves each caller token with the captured handler's registration, as its first request would, and
// caches for its user, unless it has a downstream token already, a copy of user like's cached token (its bytes,
// expiry and refresh time), as On-Behalf-Of would have cached one: under the key of the proven identity, the very
// strings a flight for that caller stores its token under. It stands in for tens of thousands of On-Behalf-Of
// calls, each an RSA signature by the emulator on the cores the suite measures; the request path reads a seeded
// entry exactly as an obtained one. It returns how many it seeded, and remembers each user's key for
// CreateSessions.
func (e *Env) SeedTokens(name, like string, tokens []string) (int, error) {
	h, err := CapturedHandler(name)
	if err != nil {
		return 0, err
	}
	ctx := context.Background()
	scopes := tokencache.NormalizeScopes([]string{GraphScope})
	tok, ok, err := h.TokenCache().Get(ctx, tokencache.Key{User: e.userKey(like), Scopes: scopes})
	if err != nil || !ok {
		return 0, fmt.Errorf("no cached token for %s to copy (%v)", like, err)
	}
	seeded := 0
	for _, t := range tokens {
		id, err := h.ProveCaller(ctx, t)
		if err != nil {
			return seeded, err
		}
		e.userKeys[id.ObjectID] = id.UserKey
		k := tokencache.Key{User: id.UserKey, Context: id.AuthContext, Scopes: scopes}
		if _, ok, _ := h.TokenCache().Get(ctx, k); ok {
			continue
		}
		if err := h.TokenCache().Set(ctx, k, tokencache.Token{AccessToken: tok.AccessToken,
			ExpiresOn: tok.ExpiresOn, RefreshOn: tok.RefreshOn}); err != nil {
			return seeded, err
		}
		seeded++
	}
	return seeded, nil
}

// userKey is the user's key as the proven identity has it (SeedTokens), else as one is made.
func (e *Env) userKey(oid string) string {
	if k, ok := e.userKeys[oid]; ok {
		return k
	}
	return tokencache.UserKey(oid, entraemu.DefaultTenantID)
}
