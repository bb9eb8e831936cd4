package entraemu

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"strings"
	"time"
)

// codeLifetime is how long an authorization code can be redeemed, as in Entra.
const codeLifetime = 10 * time.Minute

// codeRecord is an issued authorization code. Only the code's hash is stored.
type codeRecord struct {
	userKey     string
	clientID    string
	redirectURI string
	scope       string
	challenge   string
	method      string // S256 or plain
	nonce       string
	sid         string
	amr         []string
	authTime    time.Time
	expires     time.Time
	used        bool
	spa         bool // issued for a spa redirect URI (platforms.go)
}

func (e *Emulator) newCode(c *codeRecord) string {
	code := "1.A" + newOpaque(128)
	e.mu.Lock()
	defer e.mu.Unlock()
	e.codes[hashKey(code)] = c
	e.maybeSweepLocked(e.now())
	return code
}

// pkceMatches checks code_verifier against the challenge from the authorize request (RFC 7636).
func pkceMatches(method, challenge, verifier string) bool {
	if verifier == "" {
		return false
	}
	want := verifier
	if method == "S256" {
		sum := sha256.Sum256([]byte(verifier))
		want = base64.RawURLEncoding.EncodeToString(sum[:])
	}
	return subtle.ConstantTimeCompare([]byte(want), []byte(challenge)) == 1
}

// grantAuthCode redeems an authorization code: single use, 10 minutes, same redirect URI, PKCE.
func (e *Emulator) grantAuthCode(w http.ResponseWriter, tr *tokenRequest) {
	code := tr.form.Get("code")
	if code == "" {
		e.tokenError(w, tr.r, errMissingParam("code"))
		return
	}
	redirect := tr.form.Get("redirect_uri")
	h := hashKey(code)
	e.mu.Lock()
	rec, ok := e.codes[h]
	var snap codeRecord
	if ok {
		snap = *rec
	}
	e.mu.Unlock()
	if !ok || snap.clientID != strings.ToLower(tr.app.ClientID) {
		e.tokenError(w, tr.r, errCodeMalformed())
		return
	}
	u := e.userByKey(snap.userKey)
	if u == nil {
		e.tokenError(w, tr.r, errCodeMalformed())
		return
	}
	e.counters.userGrant(u.Key, tr.grant)
	switch {
	case snap.used:
		e.tokenError(w, tr.r, errCodeRedeemed())
		return
	case e.now().After(snap.expires):
		e.tokenError(w, tr.r, errCodeExpired())
		return
	case redirect == "":
		e.tokenError(w, tr.r, errMissingParam("redirect_uri"))
		return
	case redirect != snap.redirectURI:
		e.tokenError(w, tr.r, errRedirectMismatch(redirect, snap.redirectURI))
		return
	case snap.spa && snap.challenge == "":
		e.tokenError(w, tr.r, errPKCERequiredForSPA())
		return
	case snap.challenge != "" && !pkceMatches(snap.method, snap.challenge, tr.form.Get("code_verifier")):
		e.tokenError(w, tr.r, errPKCEMismatch())
		return
	}
	scope := snap.scope
	if !tr.v1 && strings.TrimSpace(tr.form.Get("scope")) != "" {
		scope = tr.form.Get("scope")
	}
	sr, a := e.parseScopes(scope)
	if tr.v1 {
		sr, a = e.scopeOf(tr, true)
	}
	if a != nil {
		e.tokenError(w, tr.r, a)
		return
	}
	// OpenID scopes granted at the authorize step (offline_access above all) still apply.
	if orig, err := e.parseScopes(snap.scope); err == nil {
		for k := range orig.oidc {
			sr.oidc[k] = true
		}
	}
	ri, values, a := e.delegatedGrant(u, tr.app, sr)
	if a != nil {
		e.tokenError(w, tr.r, a)
		return
	}
	s := subject{user: u, amr: snap.amr, sid: snap.sid, ipaddr: remoteIP(tr.r), authTime: snap.authTime}
	if e.userFault(w, tr, u, s, ri.appID) {
		return
	}
	e.mu.Lock()
	lost := rec.used
	rec.used = true
	e.mu.Unlock()
	if lost { // a concurrent redemption won
		e.tokenError(w, tr.r, errCodeRedeemed())
		return
	}
	e.issueUser(w, tr, issued{subject: s, res: ri, resID: sr.resID, values: values, sr: sr,
		nonce: snap.nonce, newRefresh: sr.has("offline_access")})
}
