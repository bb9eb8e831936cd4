package caddymodule

import (
	"errors"
	"net/http"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/tokeninjector/caddy-token-injector/internal/acquire"
	"github.com/tokeninjector/caddy-token-injector/internal/callerauth"
	"github.com/tokeninjector/caddy-token-injector/internal/contract"
	"github.com/tokeninjector/caddy-token-injector/internal/tokencache"
)

// ServeHTTP proves the caller, gets the downstream token and forwards the request with it; or answers with the
// error contract and does not call next.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	assertion, ok := bearerToken(r)
	if !ok {
		return h.answer(w, r, contract.InvalidToken("missing bearer token"))
	}

	// 1. Prove the caller. Nothing reaches Entra's token endpoint before this succeeds.
	id, err := h.state.validator.Validate(r.Context(), assertion)
	if err != nil {
		var bad *callerauth.InvalidTokenError
		if errors.As(err, &bad) {
			return h.answer(w, r, contract.InvalidToken(bad.Description))
		}
		return h.answer(w, r, contract.Classify(&contract.Unavailable{Err: err}, nil))
	}
	setUserPlaceholders(r, id)

	// 2. Get the downstream token: from the user's cache entry, or On-Behalf-Of.
	tok, err := h.state.engine.Token(r.Context(), acquire.Request{
		Key:       tokencache.Key{User: tokencache.UserKey(id.ObjectID, id.TenantID), Scopes: h.scopeKey},
		Scopes:    h.Scopes,
		Assertion: assertion,
	})
	if err != nil {
		if r.Context().Err() != nil {
			return caddyhttp.Error(statusClientClosedRequest, err) // the client went away; the flight goes on
		}
		return h.answer(w, r, contract.Classify(err, h.Scopes))
	}

	// 3. Forward with the downstream token in place of the caller's.
	r.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	return next.ServeHTTP(w, r)
}

// statusClientClosedRequest is the status reverse_proxy also uses when the client hangs up.
const statusClientClosedRequest = 499

// answer writes a contract problem. Server errors get one log line that tells the operator what to fix.
func (h *Handler) answer(w http.ResponseWriter, r *http.Request, p *contract.Problem) error {
	switch {
	case p.LogMessage != "":
		h.logger.Error(p.LogMessage, zap.String("correlation_id", p.CorrelationID), zap.String("uri", r.RequestURI))
	case p.Status >= 500:
		h.logger.Warn("identity provider unavailable", zap.Int("status", p.Status), zap.String("uri", r.RequestURI))
	default:
		h.logger.Debug("request refused", zap.String("error", p.Code), zap.String("reason", p.Reason),
			zap.String("description", p.Description))
	}
	p.Write(w)
	return nil
}

// bearerToken returns the credentials of an "Authorization: Bearer" header.
func bearerToken(r *http.Request) (string, bool) {
	scheme, token, found := strings.Cut(r.Header.Get("Authorization"), " ")
	if !found || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// setUserPlaceholders names the user for access logs and later handlers. {http.auth.user.id} is the one Caddy's
// access log prints as user_id.
func setUserPlaceholders(r *http.Request, id *callerauth.Identity) {
	repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if !ok {
		return
	}
	repl.Set("http.auth.user.id", id.ObjectID)
	repl.Set("http.auth.user.oid", id.ObjectID)
	repl.Set("http.auth.user.tid", id.TenantID)
	repl.Set("http.auth.user.upn", id.Username)
	repl.Set("http.auth.user.name", id.Name)
}
