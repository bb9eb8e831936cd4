package entraemu

import (
	"net/http"
	"strings"
	"time"
)

// refreshRecord is the server side of an opaque refresh token, bound to user and client.
type refreshRecord struct {
	userKey  string
	clientID string
	sid      string
	amr      []string
	authTime time.Time // when the user signed in: what Entra calls the grant's issue time
	issued   time.Time // when this token was issued
	expires  time.Time // issued + RefreshTokenLifetime (inactivity window)
	gen      int       // the user's revocation generation at issue time
	used     bool
	spa      bool // issued to a browser (spa) redemption: redeemed only cross-origin, without a secret
}

// newRefreshToken stores a new refresh token for s and returns it. Only its hash is kept.
func (e *Emulator) newRefreshToken(s subject, clientID string) string {
	tok := "1.A" + newOpaque(96) // real refresh tokens are long opaque strings, often starting "1.A" or "0.A"
	now := e.now()
	rec := &refreshRecord{
		userKey: strings.ToLower(s.user.Key), clientID: strings.ToLower(clientID),
		sid: s.sid, amr: s.amr, authTime: s.authTime, issued: now,
		expires: now.Add(e.cfg.RefreshTokenLifetime),
	}
	if rec.authTime.IsZero() {
		rec.authTime = now
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	rec.gen = e.revokeGen[rec.userKey]
	e.refresh[hashKey(tok)] = rec
	e.maybeSweepLocked(now)
	return tok
}

// maybeSweepLocked drops expired refresh tokens, codes and sessions now and then so memory stays
// bounded under load tests. Redeemed refresh tokens are kept until they expire, for reuse detection.
func (e *Emulator) maybeSweepLocked(now time.Time) {
	e.sweepTick++
	if e.sweepTick%1024 != 0 {
		return
	}
	for k, r := range e.refresh {
		if now.After(r.expires) {
			delete(e.refresh, k)
		}
	}
	for k, c := range e.codes {
		if now.After(c.expires.Add(time.Hour)) {
			delete(e.codes, k)
		}
	}
}

// RevokeRefreshTokens revokes every refresh token and browser session of userKey, like an admin's
// "Revoke sessions" (Entra then answers AADSTS50173 for the old refresh tokens).
func (e *Emulator) RevokeRefreshTokens(userKey string) {
	k := strings.ToLower(userKey)
	e.mu.Lock()
	defer e.mu.Unlock()
	e.revokeGen[k]++
	e.revokedAt[k] = e.now()
	for id, s := range e.sessions {
		if s.userKey == k {
			delete(e.sessions, id)
		}
	}
}

// grantRefresh redeems a refresh token, with rotation: the response carries a new refresh token.
func (e *Emulator) grantRefresh(w http.ResponseWriter, tr *tokenRequest) {
	raw := tr.form.Get("refresh_token")
	if raw == "" {
		e.tokenError(w, tr.r, errMissingParam("refresh_token"))
		return
	}
	h := hashKey(raw)
	e.mu.Lock()
	rec, ok := e.refresh[h]
	var snapshot refreshRecord
	var validFrom time.Time
	var revoked bool
	if ok {
		snapshot = *rec
		revoked = rec.gen < e.revokeGen[rec.userKey]
		validFrom = e.revokedAt[rec.userKey]
	}
	e.mu.Unlock()
	if !ok {
		e.tokenError(w, tr.r, errRefreshMalformed())
		return
	}
	if snapshot.clientID != strings.ToLower(tr.app.ClientID) {
		e.tokenError(w, tr.r, errGrantInvalid())
		return
	}
	u := e.userByKey(snapshot.userKey)
	if u == nil {
		e.tokenError(w, tr.r, errGrantInvalid())
		return
	}
	e.counters.userGrant(u.Key, tr.grant)
	now := e.now()
	switch {
	case revoked:
		e.tokenError(w, tr.r, errRefreshRevoked(snapshot.authTime, validFrom))
		return
	case now.After(snapshot.expires):
		e.tokenError(w, tr.r, errRefreshExpired(snapshot.issued, e.cfg.RefreshTokenLifetime))
		return
	case snapshot.used && !e.cfg.AllowRefreshTokenReuse:
		e.tokenError(w, tr.r, errGrantInvalid())
		return
	}
	sr, a := e.scopeOf(tr, false)
	if a != nil {
		e.tokenError(w, tr.r, a)
		return
	}
	if sr == nil { // no scope: Entra refreshes for Graph with the OpenID scopes
		sr = &scopeRequest{oidc: map[string]bool{"openid": true, "profile": true, "offline_access": true}}
	}
	ri, values, a := e.delegatedGrant(u, tr.app, sr)
	if a != nil {
		e.tokenError(w, tr.r, a)
		return
	}
	s := subject{user: u, amr: snapshot.amr, sid: snapshot.sid, ipaddr: remoteIP(tr.r), authTime: snapshot.authTime}
	if e.userFault(w, tr, u, s, ri.appID) {
		return
	}
	// Consume atomically: of two concurrent redemptions of one token only one wins.
	e.mu.Lock()
	lost := rec.used && !e.cfg.AllowRefreshTokenReuse
	rec.used = true
	e.mu.Unlock()
	if lost {
		e.tokenError(w, tr.r, errGrantInvalid())
		return
	}
	e.issueUser(w, tr, issued{subject: s, res: ri, resID: sr.resID, values: values, sr: sr, newRefresh: true})
}
