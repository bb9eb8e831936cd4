package entraemu

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// tokenRequest is a parsed token endpoint request after client authentication.
type tokenRequest struct {
	r     *http.Request
	form  url.Values
	v1    bool   // /oauth2/token (resource=) rather than /oauth2/v2.0/token (scope=)
	multi bool   // addressed to common/organizations
	grant string // counter name of the grant
	app   *App
	acr   string // "0" public client, "1" client secret
	spa   bool   // a browser's redemption of a spa code or refresh token (platforms.go)
}

const maxTokenBody = 1 << 20

var grantNames = map[string]string{
	"urn:ietf:params:oauth:grant-type:jwt-bearer": GrantOBO,
	"refresh_token":      GrantRefreshToken,
	"authorization_code": GrantAuthorizationCode,
	"client_credentials": GrantClientCredentials,
}

func (e *Emulator) handleTokenV2(w http.ResponseWriter, r *http.Request) { e.handleToken(w, r, false) }
func (e *Emulator) handleTokenV1(w http.ResponseWriter, r *http.Request) { e.handleToken(w, r, true) }

func (e *Emulator) handleToken(w http.ResponseWriter, r *http.Request, v1 bool) {
	e.counters.add(func(c *Counters) { c.TokenRequests++ })
	setCORS(w, r)
	if e.globalInfraFault(w, r) {
		return
	}
	kind := e.resolveTenant(r.PathValue("tenant"))
	if kind == tenantUnknown {
		e.tokenError(w, r, errTenantNotFound(r.PathValue("tenant"), "invalid_request"))
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxTokenBody)
	if err := r.ParseForm(); err != nil {
		e.tokenError(w, r, &aadError{400, "invalid_request", 90014, "The request body is not valid form data.", "", ""})
		return
	}
	tr := &tokenRequest{r: r, form: r.PostForm, v1: v1, multi: kind == tenantMulti}
	gt := tr.form.Get("grant_type")
	if gt == "" {
		e.tokenError(w, r, errMissingParam("grant_type"))
		return
	}
	tr.grant = grantNames[gt]
	if tr.grant == "" {
		e.tokenError(w, r, errUnsupportedGrant(gt))
		return
	}
	e.counters.grant(tr.grant)
	e.recordTokenRequest(tr)
	if a := e.authenticateClient(tr); a != nil {
		e.tokenError(w, r, a)
		return
	}
	switch tr.grant {
	case GrantOBO:
		e.grantOBO(w, tr)
	case GrantRefreshToken:
		e.grantRefresh(w, tr)
	case GrantAuthorizationCode:
		e.grantAuthCode(w, tr)
	case GrantClientCredentials:
		e.grantClientCredentials(w, tr)
	}
}

// authenticateClient accepts client_secret_post and client_secret_basic; public clients (no
// secret registered) must not send one.
func (e *Emulator) authenticateClient(tr *tokenRequest) *aadError {
	clientID := tr.form.Get("client_id")
	secret, hasSecret := tr.form.Get("client_secret"), tr.form.Has("client_secret")
	if id, sec, ok := tr.r.BasicAuth(); ok {
		// RFC 6749 2.3.1: both parts are form-urlencoded before base64.
		uid, err1 := url.QueryUnescape(id)
		usec, err2 := url.QueryUnescape(sec)
		if err1 != nil || err2 != nil {
			return &aadError{401, "invalid_client", 7000215, "Invalid client secret provided.", "", ""}
		}
		if clientID != "" && !strings.EqualFold(clientID, uid) {
			return &aadError{400, "invalid_request", 900144, "The client_id in the Authorization header does not match the client_id in the request body.", "", ""}
		}
		clientID, secret, hasSecret = uid, usec, true
	}
	if clientID == "" {
		return errMissingParam("client_id")
	}
	app := e.appByID(clientID)
	if app == nil {
		return e.errUnknownClient(clientID)
	}
	tr.app = app
	if tr.form.Has("client_assertion") || tr.form.Has("client_assertion_type") {
		if !e.confidential(app) {
			return errPublicClientWithSecret()
		}
		if hasSecret {
			return &aadError{400, "invalid_request", 9002313, "Invalid request. Request is malformed or invalid: both client_secret and client_assertion are present.", "", ""}
		}
		return e.authenticateAssertion(tr)
	}
	spa, a := e.browserRedemption(tr)
	if a != nil {
		return a
	}
	if tr.spa = spa; spa && !hasSecret { // a browser holds no secret: a spa redemption needs none
		tr.acr = "0"
		return nil
	}
	if !e.confidential(app) {
		if hasSecret {
			return errPublicClientWithSecret()
		}
		tr.acr = "0"
		return nil
	}
	if !hasSecret || secret == "" {
		return errMissingClientSecret()
	}
	if !app.hasSecret(secret) {
		return errBadSecret(app.ClientID)
	}
	e.credentials.saw(app.ClientID, func(s *ClientCredentialsSeen) { s.Secret++ })
	tr.acr = "1"
	return nil
}

// tokenError writes a token endpoint error and counts it.
func (e *Emulator) tokenError(w http.ResponseWriter, r *http.Request, a *aadError) {
	e.counters.add(func(c *Counters) { c.Errors++ })
	e.writeError(w, r, a)
}

// scopeOf parses the requested scopes: scope= on v2, resource= (+ optional scope=openid) on v1,
// where a resource means its static permissions, like /.default.
func (e *Emulator) scopeOf(tr *tokenRequest, required bool) (*scopeRequest, *aadError) {
	if !tr.v1 {
		raw := tr.form.Get("scope")
		if strings.TrimSpace(raw) == "" {
			if required {
				return nil, errMissingParam("scope")
			}
			return nil, nil
		}
		return e.parseScopes(raw)
	}
	res := tr.form.Get("resource")
	if res == "" {
		if required {
			return nil, errMissingParam("resource")
		}
		return nil, nil
	}
	ri := e.resourceByID(res)
	if ri == nil {
		return nil, e.errResourceNotFound(res)
	}
	sr := &scopeRequest{raw: res, oidc: map[string]bool{"offline_access": true}, res: ri, resID: res, dflt: true}
	for _, s := range strings.Fields(tr.form.Get("scope")) {
		if oidcScopes[strings.ToLower(s)] {
			sr.oidc[strings.ToLower(s)] = true
		}
	}
	return sr, nil
}

// requestClaims extracts client capabilities from the claims parameter and tells whether it
// carries a real challenge answer (anything beyond xms_cc), which satisfies a CAE revocation.
func requestClaims(raw string) (xmsCC []string, challenge bool) {
	if raw == "" {
		return nil, false
	}
	var c map[string]map[string]json.RawMessage
	if json.Unmarshal([]byte(raw), &c) != nil {
		return nil, false
	}
	for k, v := range c["access_token"] {
		if k != "xms_cc" {
			challenge = true
			continue
		}
		var cc struct {
			Values []string `json:"values"`
		}
		if json.Unmarshal(v, &cc) == nil {
			xmsCC = cc.Values
		}
	}
	return xmsCC, challenge
}

// issued is what a successful user grant hands back.
type issued struct {
	subject    subject
	res        *resourceInfo
	resID      string
	values     []string
	sr         *scopeRequest
	nonce      string
	newRefresh bool
}

// issueUser mints the access token (and refresh/id tokens) for a user grant and writes the response.
func (e *Emulator) issueUser(w http.ResponseWriter, tr *tokenRequest, is issued) {
	now := e.now()
	xmsCC, challenge := requestClaims(tr.form.Get("claims"))
	is.subject.xmsCC = xmsCC
	if challenge {
		e.clearFault(is.subject.user.Key, FaultInsufficientClaims)
	}
	resID := is.resID
	if resID == "" {
		resID = is.res.canonicalURI()
	}
	at, exp, err := e.userAccessToken(tr.r, is.subject, userTokenSpec{
		res: is.res, resID: resID, clientID: tr.app.ClientID, acr: tr.acr,
		scp: scpClaim(is.res, is.values, is.sr), version: is.res.version,
		iat: now, nbf: now, lifetime: e.cfg.AccessTokenLifetime,
	})
	if err != nil {
		e.tokenError(w, tr.r, &aadError{500, "server_error", 50000, "There was an error issuing a token.", "", ""})
		return
	}
	e.noteIssued(is.subject.user, at, now)
	resp := tokenResponse{TokenType: "Bearer", AccessToken: at, expiresAt: exp, now: now}
	if tr.v1 {
		resp.Scope, resp.Resource = strings.Join(is.values, " "), resID
	} else {
		resp.Scope = responseScope(is.res, is.values, is.sr)
	}
	if is.newRefresh || tr.v1 {
		resp.RefreshToken = e.newRefreshToken(is.subject, tr.app.ClientID)
		if tr.spa {
			e.markSPARefresh(resp.RefreshToken)
		}
	}
	if !tr.v1 && is.sr.has("openid") {
		if resp.IDToken, err = e.idToken(tr.r, is.subject, tr.app.ClientID, is.nonce); err != nil {
			e.tokenError(w, tr.r, &aadError{500, "server_error", 50000, "There was an error issuing a token.", "", ""})
			return
		}
	}
	if tr.form.Get("client_info") == "1" {
		resp.ClientInfo = e.clientInfo(is.subject.user)
	}
	e.writeToken(w, tr, resp)
}

// tokenResponse is Entra's success body, fields in Entra's order.
type tokenResponse struct {
	TokenType    string `json:"token_type"`
	Scope        string `json:"scope,omitempty"`
	ExpiresIn    int64  `json:"expires_in"`
	ExtExpiresIn int64  `json:"ext_expires_in"`
	RefreshIn    int64  `json:"refresh_in,omitempty"`
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token,omitempty"`
	IDToken      string `json:"id_token,omitempty"`
	ClientInfo   string `json:"client_info,omitempty"`

	Resource  string    `json:"-"` // v1 only
	expiresAt time.Time `json:"-"`
	now       time.Time `json:"-"`
}

// tokenResponseV1 is the v1 endpoint's body: numbers as strings, plus expires_on and resource.
type tokenResponseV1 struct {
	TokenType    string `json:"token_type"`
	Scope        string `json:"scope"`
	ExpiresIn    string `json:"expires_in"`
	ExtExpiresIn string `json:"ext_expires_in"`
	ExpiresOn    string `json:"expires_on"`
	NotBefore    string `json:"not_before"`
	Resource     string `json:"resource"`
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token,omitempty"`
}

func (e *Emulator) writeToken(w http.ResponseWriter, tr *tokenRequest, resp tokenResponse) {
	resp.ExpiresIn = int64(resp.expiresAt.Sub(resp.now).Seconds())
	resp.ExtExpiresIn = resp.ExpiresIn
	if e.cfg.RefreshIn > 0 {
		resp.RefreshIn = int64(e.cfg.RefreshIn.Seconds())
	}
	var body any = resp
	if tr.v1 {
		n := strconv.FormatInt(resp.ExpiresIn, 10)
		body = tokenResponseV1{
			TokenType: resp.TokenType, Scope: resp.Scope, ExpiresIn: n, ExtExpiresIn: n,
			ExpiresOn: strconv.FormatInt(resp.expiresAt.Unix(), 10), NotBefore: strconv.FormatInt(resp.now.Unix(), 10),
			Resource: resp.Resource, AccessToken: resp.AccessToken, RefreshToken: resp.RefreshToken,
		}
	}
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-store, no-cache")
	h.Set("Pragma", "no-cache")
	h.Set("x-ms-request-id", newGUID())
	h.Set("client-request-id", correlationID(tr.r))
	w.WriteHeader(http.StatusOK)
	_ = json.NewEncoder(w).Encode(body)
}

// grantClientCredentials issues an app-only token: scope must be <resource>/.default.
func (e *Emulator) grantClientCredentials(w http.ResponseWriter, tr *tokenRequest) {
	if tr.multi {
		e.tokenError(w, tr.r, errGrantOverCommon())
		return
	}
	if tr.acr == "0" {
		e.tokenError(w, tr.r, &aadError{401, "invalid_client", 7000218, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.", "", ""})
		return
	}
	var ri *resourceInfo
	var resID string
	if tr.v1 {
		resID = tr.form.Get("resource")
		if resID == "" {
			e.tokenError(w, tr.r, errMissingParam("resource"))
			return
		}
	} else {
		raw := strings.TrimSpace(tr.form.Get("scope"))
		if raw == "" {
			e.tokenError(w, tr.r, errMissingParam("scope"))
			return
		}
		// MSAL adds openid, profile and offline_access to every request; Entra ignores them here.
		fields := slices.DeleteFunc(strings.Fields(raw), func(s string) bool { return oidcScopes[strings.ToLower(s)] })
		if len(fields) != 1 || !strings.HasSuffix(fields[0], "/.default") {
			e.tokenError(w, tr.r, errClientCredentialsScope(raw))
			return
		}
		resID = strings.TrimRight(strings.TrimSuffix(fields[0], "/.default"), "/")
	}
	if ri = e.resourceByID(resID); ri == nil {
		e.tokenError(w, tr.r, e.errResourceNotFound(resID))
		return
	}
	at, exp, err := e.appAccessToken(tr.r, ri, resID, tr.app, tr.app.rolesFor(ri))
	if err != nil {
		e.tokenError(w, tr.r, &aadError{500, "server_error", 50000, "There was an error issuing a token.", "", ""})
		return
	}
	// Entra's client credentials response carries no scope field (MSAL then caches under .default).
	e.writeToken(w, tr, tokenResponse{TokenType: "Bearer", AccessToken: at, expiresAt: exp, now: e.now(), Resource: resID})
}
