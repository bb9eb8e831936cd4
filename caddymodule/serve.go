package caddymodule

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/tokeninjector/caddy-token-injector/internal/acquire"
	"github.com/tokeninjector/caddy-token-injector/internal/callerauth"
	"github.com/tokeninjector/caddy-token-injector/internal/contract"
	"github.com/tokeninjector/caddy-token-injector/internal/identity"
	"github.com/tokeninjector/caddy-token-injector/internal/tokencache"
)

// ServeHTTP gets a downstream token for the caller and forwards the request with it, or answers with the error
// contract and does not call next. A bearer token, when present, wins; otherwise a sign-in session is used.
//
// Refusals are written here, as the contract's JSON body, rather than returned as a caddyhttp.Error: the body
// (reason, claims, login_url) is what clients act on, and a handler error would reach the client without it
// unless every site configured handle_errors. The {http.token_injector.*} placeholders still name the refusal
// for access logs.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if h.cors.Preflight(w, r) {
		return nil
	}
	h.cors.Decorate(w, r)
	if h.serveClientKit(w, r) { // /.auth/client.js
		return nil
	}
	if h.signIn != nil {
		h.signIn.StripCallbackReferer(r)
		if h.signIn.Owns(r) {
			if h.signIn.URLCarriesSecret(r) {
				caddyhttp.SetVar(r.Context(), caddyhttp.LogSkipVar, true)
			}
			h.signIn.ServeHTTP(w, r) // login, callback, logout, me, handoff
			return nil
		}
	}
	req, err := h.prove(r)
	if err == nil {
		// 2. Get the downstream token: from the user's cache entry, or On-Behalf-Of / the session's refresh token.
		var tok tokencache.Token
		if tok, err = h.tokens.Token(r.Context(), req); err == nil {
			// 3. Forward with the downstream token in place of the caller's credentials; 4. once more with a
			// token for the claims, should the upstream challenge it (cae.go).
			// The session cookie goes, also without sign-in here: another route of the site may have set one.
			// The slice its header line freed, if any, can hold the token: no allocation.
			return h.forward(w, r, next, req, tok, h.sessions.StripCookie(r))
		}
	}
	h.refuse(w, r, err)
	return nil
}

// prove finds who the caller is. Nothing reaches Entra's token endpoint before this succeeds.
func (h *Handler) prove(r *http.Request) (acquire.Request, error) {
	if h.AppOnly {
		return h.proveForApp(r) // apponly.go
	}
	key := tokencache.Key{Scopes: h.scopeKey}
	// 1a. The caller's bearer token, validated.
	if assertion, ok := bearerToken(r); ok {
		id, err := h.proveToken(r, assertion)
		if err != nil {
			observer.Rejected(err)
			return acquire.Request{}, err
		}
		key.User, key.Context = id.UserKey, id.AuthContext
		return acquire.Request{Key: key, Scopes: h.scopes, Assertion: assertion, Timeout: h.timeout,
			ExpiryMargin: h.expiryMargin, Tenant: h.callerTenant(id.TenantID), Memo: id.Memo}, nil
	}
	// 1b. Or the caller's sign-in session; its cookie holds only a sealed session id.
	if h.sessions == nil {
		observer.Rejected(errMissingBearer)
		return acquire.Request{}, errMissingBearer
	}
	c, err := h.sessions.Caller(r)
	if err != nil {
		return acquire.Request{}, err // ErrNoSession, or a shared store that is down (503, nobody signed out)
	}
	if !h.callers.TakesTenant(c.User.TenantID) { // allowed_tenants narrowed by a reload since the sign-in
		observer.Rejected(errTenantNotAllowed)
		return acquire.Request{}, errTenantNotAllowed
	}
	setUserPlaceholders(r, c.Placeholders)
	key.User, key.Context = c.UserKey, tokencache.SessionContext
	return acquire.Request{Key: key, Scopes: h.scopes, Timeout: h.timeout, ExpiryMargin: h.expiryMargin,
		Tenant: h.callerTenant(c.User.TenantID), Memo: c.Memo}, nil
}

// proveToken validates the caller's token under the route's caller rules.
func (h *Handler) proveToken(r *http.Request, assertion string) (*callerauth.Identity, error) {
	id, err := h.callers.Validate(r.Context(), assertion, h.callerRules)
	if err != nil {
		return nil, err
	}
	p := id.Placeholders
	if p == nil { // an Identity not from callerauth.Validator
		p = identity.NewPlaceholders(id.User)
	}
	setUserPlaceholders(r, p)
	return id, nil
}

// callerValidator proves callers' tokens and says which tenants' users may call; *callerauth.Validator
// implements it.
type callerValidator interface {
	Validate(ctx context.Context, raw string, route *callerauth.Rules) (*callerauth.Identity, error)
	TakesTenant(tid string) bool
}

// errTenantNotAllowed refuses a session of a tenant allowed_tenants does not name.
var errTenantNotAllowed = &callerauth.ForbiddenError{TenantNotAllowed: true,
	Description: "the signed-in user's organization is not allowed to use this application"}

// tokenSource gets downstream tokens; *acquire.Engine implements it.
type tokenSource interface {
	Token(ctx context.Context, req acquire.Request) (tokencache.Token, error)
}

var errMissingBearer = &callerauth.InvalidTokenError{Description: "missing bearer token"}

// refuse answers with the contract, names the refusal in placeholders, and logs what the operator must read.
func (h *Handler) refuse(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		// The client went away; the flight goes on for the others. 499 is what reverse_proxy logs too.
		setRefusalPlaceholders(r, "client_closed_request", "")
		w.WriteHeader(statusClientClosedRequest)
		return
	}
	p := contract.Respond(w, r, err, h.answer)
	setRefusalPlaceholders(r, p.Code, p.Reason)
	p.Log(h.logger, r)
}

// statusClientClosedRequest is the status reverse_proxy also uses when the client hangs up.
const statusClientClosedRequest = 499

// loginURL is the sign-in URL that fixes an interaction_required answer, back to r as the client sent it (before
// handle_path or uri rewrote it).
func (h *Handler) loginURL(r *http.Request, scopes []string, claims string) string {
	if orig, ok := r.Context().Value(caddyhttp.OriginalRequestCtxKey).(http.Request); ok {
		r = &orig
	}
	return h.signIn.LoginURL(r, scopes, claims)
}

// bearerToken returns the credentials of an "Authorization: Bearer" header. The header is read by its canonical
// key, as Header.Get would after canonicalizing "Authorization" on every request.
func bearerToken(r *http.Request) (string, bool) {
	v := r.Header["Authorization"]
	if len(v) == 0 {
		return "", false
	}
	scheme, token, found := strings.Cut(v[0], " ")
	if !found || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// setAuthorization sets the Authorization header to v, in the caller's header's slice when there is one, or else
// in spare when it is a one-element slice nothing else holds (on the session path, the Cookie header's, freed by
// StripCookie): that saves an allocation per request. Nothing else holds the caller's slice either (Caddy's
// copies of the request for its logs and for reverse_proxy copy the headers), and its value is replaced.
func setAuthorization(h http.Header, v string, spare []string) {
	if old := h["Authorization"]; len(old) == 1 {
		old[0] = v
		return
	}
	if len(spare) != 1 {
		spare = make([]string, 1)
	}
	spare[0] = v
	h["Authorization"] = spare
}

// setUserPlaceholders names the user for access logs and later handlers. {http.auth.user.id} is the one Caddy's
// access log prints as user_id.
func setUserPlaceholders(r *http.Request, p identity.Placeholders) {
	repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if !ok || p == nil {
		return
	}
	// One provider, built once per proven caller or session, rather than five Set calls: Set boxes each string
	// into an interface (an allocation apiece) and grows the replacer's map on every request.
	repl.Map(caddy.ReplacerFunc(p))
}

// setRefusalPlaceholders names a refusal for access logs and handle_errors routes.
func setRefusalPlaceholders(r *http.Request, code, reason string) {
	if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
		repl.Set("http.token_injector.error", code)
		repl.Set("http.token_injector.reason", reason)
	}
}
