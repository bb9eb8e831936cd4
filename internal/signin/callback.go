package signin

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"time"

	"github.com/tokeninjector/caddy-token-injector/internal/acquire"
	"github.com/tokeninjector/caddy-token-injector/internal/contract"
	"github.com/tokeninjector/caddy-token-injector/internal/session"
	"go.uber.org/zap"
)

// Entra error codes at the callback that mean "the user did not (or could not) sign in" rather than a fault.
var userErrors = map[string]bool{"access_denied": true, "consent_required": true, "interaction_required": true,
	"login_required": true, "account_selection_required": true}

const maxErrorText = 300

// callback finishes the flow: it checks the state against the pre-login cookie, redeems the code once, starts the
// session and then redirects (redirect mode) or renders the completion page (popup and dialog modes).
func (h *Handler) callback(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	state := q.Get("state")
	pl, problem := h.checkPreLogin(r, state)
	e, code := q.Get("error"), q.Get("code")
	// Limited before the attempt is spent, so reloading the page after Retry-After still completes it.
	if problem == nil && e == "" && code != "" && !h.seen("state:"+state) && !h.limitRedemption(w, r, &pl) {
		return
	}
	if problem == nil {
		// One use: whatever happens next, this attempt is over.
		http.SetCookie(w, h.preLoginCookie(r, preLoginName(r, state), "", -1))
	}
	if e != "" {
		f := failure{status: http.StatusBadRequest, code: contract.CodeInvalidRequest, title: "Sign-in failed",
			message: "The identity provider refused the sign-in.", detail: truncate(e + ": " + q.Get("error_description"))}
		if userErrors[e] {
			f.status, f.code, f.message = http.StatusUnauthorized, contract.CodeAccessDenied, "Sign-in was cancelled or not allowed."
		}
		h.fail(w, r, f, notifyFor(pl, problem))
		return
	}
	if problem != nil {
		h.fail(w, r, *problem, nil)
		return
	}
	if code == "" {
		h.fail(w, r, badCallback("The sign-in response has no authorization code."), &pl)
		return
	}
	expires := time.Unix(pl.Created, 0).Add(h.cfg.LoginTimeout)
	codeSum := sha256.Sum256([]byte(code))
	// Both marks are taken before redeeming, so a concurrent replay is refused too.
	if !h.markUsed("state:"+state, expires) || !h.markUsed("code:"+base64.RawURLEncoding.EncodeToString(codeSum[:]), expires) {
		h.fail(w, r, badCallback("This sign-in response was already used. Start again from the application."), &pl)
		return
	}
	signedIn, err := h.idp.SignIn(r.Context(), acquire.RedeemParams{Code: code, CodeVerifier: pl.Verifier,
		RedirectURI: pl.Redirect, Nonce: pl.Nonce, Scopes: pl.Scopes})
	if err != nil {
		p := contract.DecideCodeRedemption(err, pl.Scopes)
		if p.Status == http.StatusBadRequest { // the code itself was refused: a forged callback's always is
			h.limiter.refused(addressKey(h.cfg.ClientAddress(r)), h.cfg.Now())
		}
		p.Log(h.log, r)
		h.fail(w, r, failure{status: p.Status, code: p.Code, title: "Sign-in failed", message: p.Description}, &pl)
		return
	}
	user := signedIn.User
	if h.cfg.TenantAllowed != nil && !h.cfg.TenantAllowed(user.TenantID) {
		_ = h.idp.SignOut(r.Context(), user.Key()) // the redemption kept the user's tokens
		h.fail(w, r, failure{status: http.StatusForbidden, code: contract.CodeAccessDenied, title: "Sign-in refused",
			message: "Your organization is not allowed to use this application."}, &pl)
		return
	}
	s, err := h.sessions.Create(w, r, session.Session{UserKey: user.Key(), ObjectID: user.ObjectID,
		TenantID: user.TenantID, Username: user.Username, Name: user.Name})
	if err != nil {
		h.log.Error("signin: cannot store the session", zap.Error(err))
		h.fail(w, r, failure{status: http.StatusServiceUnavailable, code: contract.CodeTemporarilyUnavailable,
			title: "Sign-in failed", message: "Your session could not be saved. Try again."}, &pl)
		return
	}
	if pl.Mode == modeRedirect {
		returnTo, _ := SafeReturnPath(pl.ReturnTo)
		w.Header().Set("Location", returnTo)
		w.WriteHeader(http.StatusFound)
		return
	}
	msg := map[string]any{"type": msgSignedIn, "user": map[string]string{"name": s.Name, "username": s.Username}}
	if h.sessions.Partitioned() && pl.Binding != "" {
		// The session cookie just set lives in this top-level window's partition; the framed add-in redeems the
		// handoff to get one in its own (see handoff). Only for a bound sign-in: nothing else can redeem it.
		if v, err := h.sealHandoff(user, pl.Binding); err == nil {
			msg["handoff"] = v
		}
	}
	h.render(w, http.StatusOK, page{Title: "Signed in", Message: "You are signed in. You can close this window.",
		Notify: h.notification(r, pl.Mode, msg), AutoClose: true})
}

// checkPreLogin finds and opens the pre-login cookie of the attempt state names, and checks it.
func (h *Handler) checkPreLogin(r *http.Request, state string) (preLogin, *failure) {
	if state == "" || len(state) > 128 {
		return preLogin{}, ptr(badCallback("The sign-in response has no valid state."))
	}
	c, err := r.Cookie(preLoginName(r, state))
	if err != nil {
		return preLogin{}, ptr(badCallback("This sign-in was not started in this browser, or it took too long. Start again from the application."))
	}
	pl, ok := h.openPreLogin(c.Value)
	if !ok {
		return preLogin{}, ptr(badCallback("The sign-in cookie is not valid. Start again from the application."))
	}
	if subtle.ConstantTimeCompare([]byte(pl.State), []byte(state)) != 1 {
		return preLogin{}, ptr(badCallback("The sign-in response does not match this sign-in. Start again from the application."))
	}
	if h.preLoginExpired(pl) {
		return preLogin{}, ptr(badCallback("The sign-in took too long. Start again from the application."))
	}
	return pl, nil
}

func badCallback(msg string) failure {
	return failure{status: http.StatusBadRequest, code: contract.CodeInvalidRequest, title: "Sign-in failed", message: msg}
}

// notifyFor returns the attempt whose opener should hear about a failure, when the attempt is known.
func notifyFor(pl preLogin, problem *failure) *preLogin {
	if problem != nil {
		return nil
	}
	return &pl
}

func truncate(s string) string {
	if r := []rune(s); len(r) > maxErrorText {
		return string(r[:maxErrorText]) + "…"
	}
	return s
}

func ptr[T any](v T) *T { return &v }
