package signin

import (
	"encoding/json"
	"net/http"

	"github.com/tokeninjector/caddy-token-injector/internal/contract"
	"github.com/tokeninjector/caddy-token-injector/internal/session"
	"go.uber.org/zap"
)

// logout ends the session and forgets the user's tokens, then redirects to return_to or, with EndSession, to
// Entra's end-session endpoint. Scripts get {"signed_out":true,"redirect":...} instead of a redirect.
//
// Logout CSRF: a cross-site page must not be able to sign the user out, and old browsers send neither
// Sec-Fetch-* nor Referer, so a GET never ends the session: it gets a confirmation page whose button POSTs from
// this origin (a script wanting JSON gets 405, Allow: POST). A POST is accepted only with Sec-Fetch-Site
// same-origin or none, or an Origin that is this or an allowed origin; with neither it is refused.
func (h *Handler) logout(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet {
		h.confirmLogout(w, r)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 8192)
	returnTo, _ := SafeReturnPath(r.PostFormValue("return_to"))
	if !h.logoutAllowed(r) {
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

// confirmLogout answers a GET: the confirmation page for a browser, 405 for a script.
func (h *Handler) confirmLogout(w http.ResponseWriter, r *http.Request) {
	if contract.PrefersJSON(r) {
		w.Header().Set("Allow", http.MethodPost)
		h.fail(w, r, failure{status: http.StatusMethodNotAllowed, title: "Method not allowed",
			message: "Sign out with POST."}, nil)
		return
	}
	returnTo, _ := SafeReturnPath(r.URL.Query().Get("return_to"))
	h.render(w, http.StatusOK, page{Title: "Sign out", Message: "Do you want to sign out?",
		Form: &logoutForm{Action: h.cfg.Path + "/logout", ReturnTo: returnTo}})
}

// logoutAllowed reports whether a logout POST comes from this origin or an allowed one.
func (h *Handler) logoutAllowed(r *http.Request) bool {
	if o := r.Header.Get("Origin"); o != "" {
		return h.sameOriginOrAllowed(r, o)
	}
	switch r.Header.Get("Sec-Fetch-Site") {
	case "same-origin", "none":
		return true
	}
	return false
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
