package entraemu

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

// grantOBO implements the on-behalf-of flow: a middle tier trades the user's token for its API
// (the assertion) for a token to a downstream resource.
func (e *Emulator) grantOBO(w http.ResponseWriter, tr *tokenRequest) {
	switch use := tr.form.Get("requested_token_use"); use {
	case "on_behalf_of":
	case "":
		e.tokenError(w, tr.r, errMissingParam("requested_token_use"))
		return
	default:
		e.tokenError(w, tr.r, &aadError{400, "invalid_request", 90014, fmt.Sprintf("The requested_token_use '%s' is not supported.", use), "", ""})
		return
	}
	if tr.acr == "0" { // OBO is for confidential clients only
		e.tokenError(w, tr.r, errMissingClientSecret())
		return
	}
	assertion := tr.form.Get("assertion")
	if assertion == "" {
		e.tokenError(w, tr.r, errMissingParam("assertion"))
		return
	}
	claims, verr := e.key.verify(assertion)
	if verr != nil {
		if verr.malformed {
			e.tokenError(w, tr.r, errMalformedAssertion())
		} else {
			e.tokenError(w, tr.r, errAssertionSignature(verr, e.key))
		}
		return
	}
	u, s, a := e.checkAssertion(tr, claims)
	if a != nil {
		e.tokenError(w, tr.r, a)
		return
	}
	e.counters.userGrant(u.Key, tr.grant)
	sr, a := e.scopeOf(tr, true)
	if a != nil {
		e.tokenError(w, tr.r, a)
		return
	}
	ri, values, a := e.delegatedGrant(u, tr.app, sr)
	if a != nil {
		e.tokenError(w, tr.r, a)
		return
	}
	if e.userFault(w, tr, u, s, ri.appID) {
		return
	}
	e.issueUser(w, tr, issued{subject: s, res: ri, resID: sr.resID, values: values, sr: sr,
		newRefresh: sr.has("offline_access")})
}

// checkAssertion validates the OBO assertion's claims: time, issuer, tenant, audience and that it
// is a user token. It returns the user and the sign-in the new token continues.
func (e *Emulator) checkAssertion(tr *tokenRequest, c map[string]any) (*User, subject, *aadError) {
	now := e.now()
	exp, okExp := numClaim(c, "exp")
	nbf, okNbf := numClaim(c, "nbf")
	if !okExp {
		return nil, subject{}, errAssertionInvalid("the assertion has no expiry (exp).")
	}
	if !now.Before(exp) {
		return nil, subject{}, errAssertionExpired(now, nbf, exp, false)
	}
	// Entra tolerates a little clock skew on nbf, not on exp.
	if okNbf && now.Add(5*time.Minute).Before(nbf) {
		return nil, subject{}, errAssertionExpired(now, nbf, exp, true)
	}
	iss, _ := c["iss"].(string)
	if iss != e.issuerV1() && !strings.HasSuffix(strings.ToLower(iss), "/"+e.tenant+"/v2.0") {
		return nil, subject{}, errAssertionInvalid("The token issuer doesn't match the API version within its valid time range.")
	}
	if tid, _ := c["tid"].(string); !strings.EqualFold(tid, e.tenant) {
		return nil, subject{}, errAssertionInvalid("the assertion was issued for another tenant.")
	}
	aud, _ := c["aud"].(string)
	app := tr.app
	if !strings.EqualFold(aud, app.ClientID) && !slices.Contains(app.IdentifierURIs, aud) {
		return nil, subject{}, errAssertionAudience(aud, app.ClientID, appName(app))
	}
	scp, _ := c["scp"].(string)
	oid, _ := c["oid"].(string)
	if scp == "" {
		return nil, subject{}, errAppOnlyOBO(app.ClientID)
	}
	u := e.usersByOID[strings.ToLower(oid)]
	if u == nil {
		return nil, subject{}, errAssertionInvalid("the user in the assertion does not exist in the tenant.")
	}
	sid, _ := c["sid"].(string)
	if sid == "" {
		sid = newGUID()
	}
	amr := []string{"pwd"}
	if e.sessionHadMFA(sid) || claimHas(c["amr"], "mfa") {
		amr = append(amr, "mfa")
	}
	iat, _ := numClaim(c, "iat")
	return u, subject{user: u, amr: amr, sid: sid, ipaddr: remoteIP(tr.r), authTime: iat}, nil
}

func numClaim(c map[string]any, name string) (time.Time, bool) {
	switch v := c[name].(type) {
	case json.Number:
		if f, err := v.Float64(); err == nil {
			return time.Unix(int64(f), 0), true
		}
	case float64:
		return time.Unix(int64(v), 0), true
	}
	return time.Time{}, false
}

func claimHas(v any, want string) bool {
	list, _ := v.([]any)
	for _, x := range list {
		if s, _ := x.(string); s == want {
			return true
		}
	}
	return false
}

// markMFA records that sign-in session sid satisfied MFA; tokens carrying that sid inherit it.
func (e *Emulator) markMFA(sid string) {
	e.mu.Lock()
	e.mfaSIDs[sid] = true
	e.mu.Unlock()
}

func (e *Emulator) sessionHadMFA(sid string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.mfaSIDs[sid]
}
