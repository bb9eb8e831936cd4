package entraemu

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"
)

// subject is who a user token is about and how they signed in.
type subject struct {
	user     *User
	amr      []string // ["pwd"] or ["pwd","mfa"]
	sid      string   // sign-in session id
	ipaddr   string
	xmsCC    []string // client capabilities (xms_cc), e.g. cp1 for CAE
	authTime time.Time
}

func (s subject) mfa() bool {
	for _, m := range s.amr {
		if m == "mfa" {
			return true
		}
	}
	return false
}

// userTokenSpec describes one delegated access token.
type userTokenSpec struct {
	res      *resourceInfo
	resID    string // resource identifier as requested: a v1 token's aud
	clientID string // azp / appid
	acr      string // client authentication: "0" public, "1" secret
	scp      string
	version  int
	iat, nbf time.Time
	lifetime time.Duration
	extra    map[string]any
}

func (e *Emulator) issuerV2(r *http.Request) string { return e.baseURL(r) + "/" + e.tenant + "/v2.0" }
func (e *Emulator) issuerV1() string                { return "https://" + e.cloud(nil).sts + "/" + e.tenant + "/" }

// pairwiseSub is the sub claim: stable per (principal, application) and opaque, as in Entra.
func pairwiseSub(oid, appID string) string {
	sum := sha256.Sum256([]byte(strings.ToLower(oid) + "|" + strings.ToLower(appID)))
	return base64.RawURLEncoding.EncodeToString(sum[:])[:43]
}

// opaqueClaim mimics Entra's internal aio/rh/uti values: random, not meaningful.
func opaqueClaim(prefix string, n int) string { return prefix + newOpaque(n) }

func splitName(n string) (given, family string) {
	given, family, _ = strings.Cut(n, " ")
	return given, family
}

// userAccessToken signs a delegated access token in v1 or v2 shape.
func (e *Emulator) userAccessToken(r *http.Request, s subject, t userTokenSpec) (string, time.Time, error) {
	exp := t.iat.Add(t.lifetime)
	u := s.user
	c := map[string]any{
		"iat": t.iat.Unix(), "nbf": t.nbf.Unix(), "exp": exp.Unix(),
		"aio":  opaqueClaim("", 48),
		"name": u.Name, "oid": u.ObjectID,
		"rh":  opaqueClaim("1.A", 24),
		"scp": t.scp, "sid": s.sid,
		"sub": pairwiseSub(u.ObjectID, t.res.appID),
		"tid": e.tenant,
		"uti": newOpaque(16),
	}
	if t.version == 2 {
		c["aud"] = t.res.appID
		c["iss"] = e.issuerV2(r)
		c["azp"] = t.clientID
		c["azpacr"] = t.acr
		c["preferred_username"] = u.UPN
		c["ver"] = "2.0"
	} else {
		given, family := splitName(u.Name)
		c["aud"] = t.resID
		c["iss"] = e.issuerV1()
		c["acr"] = "1"
		c["amr"] = s.amr
		c["appid"] = t.clientID
		c["appidacr"] = t.acr
		c["family_name"] = family
		c["given_name"] = given
		c["ipaddr"] = s.ipaddr
		c["unique_name"] = u.UPN
		c["upn"] = u.UPN
		c["ver"] = "1.0"
	}
	if t.res.isGraph {
		c["idtyp"] = "user"
	}
	if len(s.xmsCC) > 0 {
		c["xms_cc"] = s.xmsCC
	}
	for k, v := range t.extra {
		c[k] = v
	}
	tok, err := e.key.sign(c, t.version != 2)
	return tok, exp, err
}

// appAccessToken signs an app-only (client_credentials) token: roles, no scp, idtyp app.
func (e *Emulator) appAccessToken(r *http.Request, ri *resourceInfo, resID string, app *App, roles []string) (string, time.Time, error) {
	now := e.now()
	exp := now.Add(e.cfg.AccessTokenLifetime)
	spOID := deterministicGUID("sp:" + strings.ToLower(app.ClientID))
	c := map[string]any{
		"iat": now.Unix(), "nbf": now.Unix(), "exp": exp.Unix(),
		"aio": opaqueClaim("", 48), "idtyp": "app", "oid": spOID,
		"rh": opaqueClaim("1.A", 24), "sub": spOID, "tid": e.tenant, "uti": newOpaque(16),
	}
	if len(roles) > 0 {
		c["roles"] = roles
	}
	if ri.version == 2 {
		c["aud"], c["iss"], c["azp"], c["azpacr"], c["ver"] = ri.appID, e.issuerV2(r), app.ClientID, "1", "2.0"
	} else {
		c["aud"], c["iss"], c["appid"], c["appidacr"], c["ver"] = resID, e.issuerV1(), app.ClientID, "1", "1.0"
		c["idp"] = e.issuerV1()
	}
	tok, err := e.key.sign(c, ri.version != 2)
	return tok, exp, err
}

// idToken signs a v2 ID token for the client (aud = client id).
func (e *Emulator) idToken(r *http.Request, s subject, clientID, nonce string) (string, error) {
	now := e.now()
	c := map[string]any{
		"aud": clientID, "iss": e.issuerV2(r),
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Hour).Unix(),
		"aio": opaqueClaim("", 48), "name": s.user.Name, "oid": s.user.ObjectID,
		"preferred_username": s.user.UPN, "rh": opaqueClaim("1.A", 24), "sid": s.sid,
		"sub": pairwiseSub(s.user.ObjectID, clientID), "tid": e.tenant,
		"uti": newOpaque(16), "ver": "2.0",
	}
	if nonce != "" {
		c["nonce"] = nonce
	}
	return e.key.sign(c, false)
}

// clientInfo is the client_info field: UNPADDED base64url of {"uid":oid,"utid":tid}.
func (e *Emulator) clientInfo(u *User) string {
	b, _ := json.Marshal(map[string]string{"uid": u.ObjectID, "utid": e.tenant})
	return base64.RawURLEncoding.EncodeToString(b)
}

func remoteIP(r *http.Request) string {
	if r == nil {
		return "127.0.0.1"
	}
	if h, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return h
	}
	return r.RemoteAddr
}

// MintOptions shapes a token from MintAccessToken.
type MintOptions struct {
	Audience  string        // client id or identifier URI of the API; default: the first app that exposes an API (the add-in API)
	ClientID  string        // the calling app's id (appid/azp); default: the audience app itself (as with NAA)
	Scopes    []string      // default: access_as_user (or the audience's first scope)
	Lifetime  time.Duration // default Config.AccessTokenLifetime; negative gives an already expired token
	Version   int           // 1 or 2; default the audience app's AccessTokenVersion
	NotBefore time.Time     // default now
	MFA       bool          // amr includes "mfa" (satisfies an mfa_required fault in OBO)
	// ExtraClaims are added to (or replace) the token's claims, e.g. to forge edge cases in tests.
	ExtraClaims map[string]any
}

// MintAccessToken returns what Office.auth.getAccessToken (or MSAL.js with NAA) would give the
// add-in for userKey: a token whose audience is the add-in's own API, signed by the tenant key.
func (e *Emulator) MintAccessToken(userKey string, o MintOptions) (string, error) {
	tok, _, err := e.mint(nil, userKey, o)
	return tok, err
}

func (e *Emulator) mint(r *http.Request, userKey string, o MintOptions) (string, time.Time, error) {
	u := e.userByKey(userKey)
	if u == nil {
		return "", time.Time{}, fmt.Errorf("entraemu: unknown user %q", userKey)
	}
	var ri *resourceInfo
	resID := o.Audience
	if resID == "" {
		for _, cand := range e.resources {
			if e.appByID(cand.appID) != nil {
				ri = cand
				break
			}
		}
		if ri == nil {
			return "", time.Time{}, errors.New("entraemu: no app exposes an API; set MintOptions.Audience")
		}
		resID = ri.canonicalURI()
	} else if ri = e.resourceByID(resID); ri == nil {
		return "", time.Time{}, fmt.Errorf("entraemu: unknown audience %q", o.Audience)
	}
	scopes := o.Scopes
	if len(scopes) == 0 {
		if _, ok := ri.scopes["access_as_user"]; ok {
			scopes = []string{"access_as_user"}
		} else if keys := slices.Sorted(maps.Keys(ri.scopes)); len(keys) > 0 {
			scopes = []string{ri.scopes[keys[0]].Value}
		}
	}
	version := o.Version
	if version == 0 {
		version = ri.version
	}
	if version != 1 && version != 2 {
		return "", time.Time{}, fmt.Errorf("entraemu: token version %d", version)
	}
	client := o.ClientID
	if client == "" {
		client = ri.appID
	}
	lifetime := o.Lifetime
	if lifetime == 0 {
		lifetime = e.cfg.AccessTokenLifetime
	}
	now := e.now()
	nbf := o.NotBefore
	if nbf.IsZero() {
		nbf = now
	}
	amr := []string{"pwd"}
	if o.MFA {
		amr = append(amr, "mfa")
	}
	s := subject{user: u, amr: amr, sid: newGUID(), ipaddr: remoteIP(r), authTime: now}
	if o.MFA {
		e.markMFA(s.sid)
	}
	return e.userAccessToken(r, s, userTokenSpec{
		res: ri, resID: resID, clientID: client, acr: "0", scp: strings.Join(scopes, " "),
		version: version, iat: now, nbf: nbf, lifetime: lifetime, extra: o.ExtraClaims,
	})
}
