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
	"github.com/tokeninjector/caddy-token-injector/internal/signin"
	"github.com/tokeninjector/caddy-token-injector/internal/tokencache"
)

// ServeHTTP gets a downstream token for the caller and forwards the request with it, or answers with the error
// contract and does not call next. A bearer token, when present, wins; otherwise a sign-in session is used.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if h.cors.Preflight(w, r) {
		return nil
	}
	h.cors.Decorate(w, r)
	if h.signIn != nil {
		h.signIn.StripCallbackReferer(r)
		if h.signIn.Owns(r) {
			if strings.HasSuffix(r.URL.Path, "/callback") {
				// Its URL carries the authorization code, which no log may hold.
				caddyhttp.SetVar(r.Context(), caddyhttp.LogSkipVar, true)
			}
			h.signIn.ServeHTTP(w, r) // login, callback, logout, me, handoff
			return nil
		}
	}

	var req acquire.Request
	if assertion, ok := bearerToken(r); ok {
		// 1a. Prove the caller's token. Nothing reaches Entra's token endpoint before this succeeds.
		id, err := h.state.validator.Validate(r.Context(), assertion)
		if err != nil {
			var bad *callerauth.InvalidTokenError
			if errors.As(err, &bad) {
				return h.answer(w, r, contract.InvalidToken(bad.Description))
			}
			return h.answer(w, r, contract.Classify(&contract.Unavailable{Err: err}, nil))
		}
		setUserPlaceholders(r, id.ObjectID, id.TenantID, id.Username, id.Name)
		req = acquire.Request{Key: tokencache.Key{User: id.HomeAccountID}, Assertion: assertion}
	} else if h.sessions != nil {
		// 1b. Or find the caller's sign-in session; its cookie holds only a sealed session id.
		s, ok := h.sessions.Load(r)
		if !ok {
			return h.answer(w, r, contract.LoginRequired("", h.scopes))
		}
		setUserPlaceholders(r, s.ObjectID, s.TenantID, s.Username, s.Name)
		req = acquire.Request{Key: tokencache.Key{User: s.UserKey}}
	} else {
		return h.answer(w, r, contract.InvalidToken("missing bearer token"))
	}

	// 2. Get the downstream token: from the user's cache entry, or On-Behalf-Of / the session's refresh token.
	req.Key.Scopes, req.Scopes = h.scopeKey, h.scopes
	tok, err := h.state.engine.Token(r.Context(), req)
	if err != nil {
		if r.Context().Err() != nil {
			return caddyhttp.Error(statusClientClosedRequest, err) // the client went away; the flight goes on
		}
		return h.answer(w, r, contract.Classify(err, h.scopes))
	}

	// 3. Forward with the downstream token in place of the caller's credentials.
	r.Header.Set("Authorization", tok.AuthorizationHeader())
	if h.sessions != nil {
		h.sessions.StripCookie(r)
	}
	return next.ServeHTTP(w, r)
}

// statusClientClosedRequest is the status reverse_proxy also uses when the client hangs up.
const statusClientClosedRequest = 499

// answer writes a contract problem. With sign-in enabled, a 401 carries the URL that fixes it, and a browser
// navigation is sent there at once. Server errors get one log line that tells the operator what to fix.
func (h *Handler) answer(w http.ResponseWriter, r *http.Request, p *contract.Problem) error {
	if h.signIn != nil && p.Status == http.StatusUnauthorized && p.Code == contract.CodeInteractionRequired {
		p.LoginURL = h.signIn.LoginURL(originalRequest(r), p.Scopes, p.Claims)
		if signin.IsNavigation(r) {
			http.Redirect(w, r, p.LoginURL, http.StatusFound)
			return nil
		}
	}
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

// originalRequest is r as the client sent it, before handle_path or uri rewrote it: sign-in must return there.
func originalRequest(r *http.Request) *http.Request {
	if orig, ok := r.Context().Value(caddyhttp.OriginalRequestCtxKey).(http.Request); ok {
		return &orig
	}
	return r
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
func setUserPlaceholders(r *http.Request, oid, tid, username, name string) {
	repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if !ok {
		return
	}
	// One provider rather than five Set calls: Set boxes each string into an interface (an allocation apiece)
	// and grows the replacer's map on every request; the provider boxes only what a log line actually reads.
	repl.Map(func(key string) (any, bool) {
		switch key {
		case "http.auth.user.id", "http.auth.user.oid":
			return oid, true
		case "http.auth.user.tid":
			return tid, true
		case "http.auth.user.upn":
			return username, true
		case "http.auth.user.name":
			return name, true
		}
		return nil, false
	})
}
