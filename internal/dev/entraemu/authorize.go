package entraemu

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// authzRequest is a validated authorize request whose redirect URI can be trusted.
type authzRequest struct {
	p        url.Values
	app      *App
	redirect string
	spa      bool   // the redirect URI is of the spa platform
	mode     string // query, fragment or form_post
	sr       *scopeRequest
}

func authorizeParams(r *http.Request) url.Values {
	p := url.Values{}
	for k, v := range r.URL.Query() {
		p[k] = v
	}
	if r.Method == http.MethodPost {
		_ = r.ParseForm()
		for k, v := range r.PostForm {
			if k != "user" {
				p[k] = v
			}
		}
	}
	return p
}

// handleAuthorize is /oauth2/v2.0/authorize: validate, then sign in silently (session cookie),
// show the demo-user picker, or complete the picker's form POST (field user=<key>).
func (e *Emulator) handleAuthorize(w http.ResponseWriter, r *http.Request) {
	e.counters.add(func(c *Counters) { c.Authorize++ })
	if e.resolveTenant(r.PathValue("tenant")) == tenantUnknown {
		e.writeErrorPage(w, r, errTenantNotFound(r.PathValue("tenant"), "invalid_request"))
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxTokenBody)
	p := authorizeParams(r)
	ar, a := e.validateAuthorize(p)
	if a != nil { // no trusted redirect URI: the user sees the error
		e.writeErrorPage(w, r, a)
		return
	}
	if a := e.validateAuthorizeProtocol(ar); a != nil {
		e.redirectError(w, r, ar, a)
		return
	}
	prompt := p.Get("prompt")
	if r.Method == http.MethodPost && r.PostForm.Get("user") != "" {
		u := e.userByKey(r.PostForm.Get("user"))
		if u == nil {
			e.renderPicker(w, r, ar, "Unknown user "+r.PostForm.Get("user")+".")
			return
		}
		e.interactiveSignIn(w, r, ar, u) // the MFA and consent steps (steps.go), then completeInteractive
		return
	}
	sess := e.currentSession(r)
	if prompt == "none" {
		if sess == nil {
			e.redirectError(w, r, ar, errLoginRequired())
			return
		}
		if a := e.silentBlocked(sess, ar); a != nil {
			e.redirectError(w, r, ar, a)
			return
		}
		e.issueCode(w, r, ar, sess)
		return
	}
	hint := p.Get("login_hint")
	if sess != nil && prompt == "" &&
		(hint == "" || e.hintMatches(hint, sess.userKey)) && e.silentBlocked(sess, ar) == nil {
		e.issueCode(w, r, ar, sess)
		return
	}
	e.renderPicker(w, r, ar, "")
}

// validateAuthorize checks what decides where errors may be sent: client and redirect URI.
func (e *Emulator) validateAuthorize(p url.Values) (*authzRequest, *aadError) {
	cid := p.Get("client_id")
	if cid == "" {
		return nil, errMissingParam("client_id")
	}
	app := e.appByID(cid)
	if app == nil {
		return nil, e.errUnknownClient(cid)
	}
	redirect := p.Get("redirect_uri")
	if redirect == "" {
		if len(app.RedirectURIs) != 1 {
			return nil, errNoReplyAddress()
		}
		redirect = app.RedirectURIs[0]
	}
	target, ok := app.matchRedirect(redirect)
	if !ok {
		return nil, errRedirectNotRegistered(redirect, app.ClientID)
	}
	mode := p.Get("response_mode")
	switch mode {
	case "":
		mode = "query"
	case "query", "fragment", "form_post":
	default:
		return nil, errUnsupportedResponseMode(mode)
	}
	return &authzRequest{p: p, app: app, redirect: redirect, spa: target.typ == RedirectSPA, mode: mode}, nil
}

// validateAuthorizeProtocol checks the rest; these errors go back to the redirect URI.
func (e *Emulator) validateAuthorizeProtocol(ar *authzRequest) *aadError {
	if rt := ar.p.Get("response_type"); rt != "code" {
		if rt == "" {
			return errMissingParam("response_type")
		}
		return errUnsupportedResponseType(rt)
	}
	if strings.TrimSpace(ar.p.Get("scope")) == "" {
		return errMissingParam("scope")
	}
	sr, a := e.parseScopes(ar.p.Get("scope"))
	if a != nil {
		return a
	}
	ar.sr = sr
	if ar.p.Get("code_challenge") != "" {
		switch ar.p.Get("code_challenge_method") {
		case "", "plain", "S256":
		default:
			return errInvalidCodeChallengeMethod()
		}
	}
	return nil
}

func (e *Emulator) hintMatches(hint, userKey string) bool {
	u := e.userByKey(userKey)
	return u != nil && (strings.EqualFold(hint, u.UPN) || strings.EqualFold(hint, u.Key))
}

// silentBlocked tells why a session cannot get a code without interaction, if it cannot.
func (e *Emulator) silentBlocked(sess *session, ar *authzRequest) *aadError {
	u := e.userByKey(sess.userKey)
	if u == nil {
		return errLoginRequired()
	}
	if hint := ar.p.Get("login_hint"); hint != "" && !e.hintMatches(hint, sess.userKey) {
		return errLoginRequired()
	}
	mfaNeeded := func() *aadError {
		a := errMFARequired(GraphAppID, "")
		a.err = "interaction_required"
		return a
	}
	// A claims challenge (MFA, CAE) can only be met by signing in again.
	if _, challenge := requestClaims(ar.p.Get("claims")); challenge && !slices.Contains(sess.amr, "mfa") {
		return mfaNeeded()
	}
	e.mu.Lock()
	uf, gf := e.faults[strings.ToLower(u.Key)], e.faults[""]
	e.mu.Unlock()
	for _, st := range []*faultState{uf, gf} {
		if st == nil {
			continue
		}
		switch st.f.Kind {
		case FaultMFARequired:
			if !slices.Contains(sess.amr, "mfa") {
				return mfaNeeded()
			}
		case FaultConsentRequired:
			a := errConsentRequired(ar.app.ClientID, appName(ar.app))
			a.err, a.suberror = "interaction_required", ""
			return a
		}
	}
	if _, _, a := e.delegatedGrant(u, ar.app, ar.sr); a != nil {
		a.err, a.suberror = "interaction_required", ""
		return a
	}
	return nil
}

// completeInteractive finishes a picker sign-in once its steps are done: the consent is recorded, MFA is
// in the session when something asked for it, and any interaction faults the user had are cleared.
func (e *Emulator) completeInteractive(w http.ResponseWriter, r *http.Request, ar *authzRequest, u *User) {
	if e.grantConsent(u, ar.app, ar.sr) {
		e.writeErrorPage(w, r, errAdminConsentRequired(appName(ar.app)))
		return
	}
	e.grantCombinedConsent(u, ar.app, ar.sr)
	_, mfa := requestClaims(ar.p.Get("claims"))
	e.mu.Lock()
	for _, k := range []string{strings.ToLower(u.Key), ""} {
		if st := e.faults[k]; st != nil && st.f.Kind == FaultMFARequired {
			mfa = true
		}
	}
	if st := e.faults[strings.ToLower(u.Key)]; st != nil {
		switch st.f.Kind {
		case FaultMFARequired, FaultConsentRequired, FaultRefreshExpired, FaultRefreshRevoked:
			delete(e.faults, strings.ToLower(u.Key))
		}
	}
	e.mu.Unlock()
	amr := []string{"pwd"}
	if mfa {
		amr = append(amr, "mfa")
	}
	sess := &session{userKey: strings.ToLower(u.Key), sid: newGUID(), amr: amr, authTime: e.now()}
	if mfa {
		e.markMFA(sess.sid)
	}
	cookie := newOpaque(32)
	e.mu.Lock()
	e.sessions[hashKey(cookie)] = sess
	e.mu.Unlock()
	secure := r.TLS != nil || strings.HasPrefix(e.baseURL(r), "https://")
	c := &http.Cookie{Name: sessionCookie, Value: cookie, Path: "/", HttpOnly: true, Secure: secure, SameSite: http.SameSiteLaxMode}
	if secure {
		c.SameSite = http.SameSiteNoneMode // silent sign-in from iframes, as Entra allows
	}
	http.SetCookie(w, c)
	e.issueCode(w, r, ar, sess)
}

// issueCode creates the authorization code and sends the user back to the client.
func (e *Emulator) issueCode(w http.ResponseWriter, r *http.Request, ar *authzRequest, sess *session) {
	method := ar.p.Get("code_challenge_method")
	if method == "" && ar.p.Get("code_challenge") != "" {
		method = "plain" // RFC 7636 default, which Entra follows
	}
	code := e.newCode(&codeRecord{
		userKey: sess.userKey, clientID: strings.ToLower(ar.app.ClientID), redirectURI: ar.redirect,
		scope: ar.p.Get("scope"), challenge: ar.p.Get("code_challenge"), method: method,
		nonce: ar.p.Get("nonce"), sid: sess.sid, amr: sess.amr, authTime: sess.authTime,
		expires: e.now().Add(codeLifetime), spa: ar.spa,
	})
	out := url.Values{"code": {code}}
	if st := ar.p.Get("state"); st != "" {
		out.Set("state", st)
	}
	out.Set("session_state", sess.sid)
	if ar.p.Get("client_info") == "1" {
		if u := e.userByKey(sess.userKey); u != nil {
			out.Set("client_info", e.clientInfo(u))
		}
	}
	respond(w, r, ar, out)
}

// redirectError sends an OAuth error back to the (validated) redirect URI.
func (e *Emulator) redirectError(w http.ResponseWriter, r *http.Request, ar *authzRequest, a *aadError) {
	body, _ := e.errorBody(r, a)
	out := url.Values{"error": {a.err}, "error_description": {body.ErrorDescription},
		"error_uri": {body.ErrorURI}}
	if st := ar.p.Get("state"); st != "" {
		out.Set("state", st)
	}
	respond(w, r, ar, out)
}
