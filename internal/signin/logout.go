package signin

import (
	"encoding/json"
	"net/http"
	"net/url"

	"github.com/tokeninjector/caddy-token-injector/internal/contract"
	"github.com/tokeninjector/caddy-token-injector/internal/session"
	"go.uber.org/zap"
)

// logout ends the session and forgets the user's tokens, then redirects to return_to or, with EndSession, to
// Entra's end-session endpoint. Scripts get {"signed_out":true,"redirect":...} instead of a redirect.
//
// Logout CSRF: a cross-site page must not be able to sign the user out. POST is accepted from this origin, from
// an allowed origin, or with no Sec-Fetch-Site and no foreign Origin (old browsers). GET, for plain links, is
// accepted only when Sec-Fetch-Site is same-origin or none (typed, bookmarked) or absent, and any Referer is this
// or an allowed origin; any other GET gets a confirmation page whose button POSTs from this origin.
func (h *Handler) logout(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost {
		r.Body = http.MaxBytesReader(w, r.Body, 8192)
	}
	returnTo, _ := SafeReturnPath(r.FormValue("return_to"))
	if !h.logoutAllowed(r) {
		if r.Method == http.MethodGet && !contract.PrefersJSON(r) {
			h.render(w, http.StatusOK, page{Title: "Sign out", Message: "Do you want to sign out?",
				Form: &logoutForm{Action: h.cfg.Path + "/logout", ReturnTo: returnTo}})
			return
		}
		h.fail(w, r, failure{status: http.StatusForbidden, title: "Sign-out refused",
			message: "Sign-out must be requested by this site."}, nil)
		return
	}
	if s, ok := h.sessions.Destroy(w, r); ok {
		// Tokens are cached per user, not per session: once they are gone every session of the user is useless,
		// so all of them end here too.
		if _, err := h.sessions.DestroyUser(r.Context(), s.UserKey); err != nil {
			h.log.Error("signin: cannot end the user's other sessions", zap.Error(err))
		}
		if err := h.idp.SignOut(r.Context(), s.UserKey); err != nil {
			h.log.Error("signin: cannot forget the user's tokens", zap.Error(err))
		}
	}
	target := returnTo
	if h.cfg.EndSession {
		if u := h.idp.EndSessionURL(origin(r) + "/"); u != "" {
			target = u
		}
	}
	if contract.PrefersJSON(r) {
		writeJSON(w, http.StatusOK, map[string]any{"signed_out": true, "redirect": target})
		return
	}
	w.Header().Set("Location", target)
	w.WriteHeader(http.StatusFound)
}

func (h *Handler) logoutAllowed(r *http.Request) bool {
	site := r.Header.Get("Sec-Fetch-Site")
	if o := r.Header.Get("Origin"); o != "" && !h.sameOriginOrAllowed(r, o) {
		return false
	}
	if r.Method == http.MethodPost {
		switch site {
		case "", "same-origin", "none":
			return true
		}
		return h.sameOriginOrAllowed(r, r.Header.Get("Origin"))
	}
	switch site {
	case "", "same-origin", "none":
	default:
		return h.sameOriginOrAllowed(r, refererOrigin(r))
	}
	if ref := r.Header.Get("Referer"); ref != "" {
		return h.sameOriginOrAllowed(r, refererOrigin(r))
	}
	return true
}

func refererOrigin(r *http.Request) string {
	u, err := url.Parse(r.Header.Get("Referer"))
	if err != nil || u.Host == "" {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

// me returns the signed-in user, or the 401 contract (login_required) with a login URL.
func (h *Handler) me(w http.ResponseWriter, r *http.Request) {
	s, ok := h.sessions.Load(r)
	if !ok {
		p := contract.Decide(session.ErrNoSession, h.cfg.Scopes)
		p.LoginURL = h.loginURL("/", nil, "")
		p.Write(w)
		return
	}
	writeJSON(w, http.StatusOK, userJSON(s))
}

func userJSON(s *session.Session) map[string]string {
	return map[string]string{"user_key": s.UserKey, "oid": s.ObjectID, "tid": s.TenantID, "username": s.Username,
		"name": s.Name}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	b, _ := json.Marshal(v)
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
