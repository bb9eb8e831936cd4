package entraemu

import (
	"cmp"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// caeState holds the Continuous Access Evaluation revocations that the downstream stub enforces, as a resource
// such as Microsoft Graph does after a critical event (the user's sessions revoked, the user disabled, a
// location change): it rejects the user's CAE tokens (those issued to a client that declared cp1) issued before
// the event with a claims challenge, until the client brings a token issued after it.
type caeState struct {
	mu      sync.Mutex
	revoked map[string]time.Time // user key -> when the event happened
	// issuedAfter holds the uti of tokens issued after the event within its second: token times are whole
	// seconds, so iat alone cannot order a token issued in the event's second.
	issuedAfter map[string]map[string]bool
}

// RevokeCAE raises a CAE critical event for userKey now: the downstream stub answers 401 insufficient_claims to
// the user's CAE tokens issued before it. With requireMFA the user must then also pass MFA (an mfa_required fault
// for the user), as when the event is a risky sign-in: the new token request gets AADSTS50076 and its claims.
func (e *Emulator) RevokeCAE(userKey string, requireMFA bool) {
	k := strings.ToLower(userKey)
	c := &e.cae
	c.mu.Lock()
	if c.revoked == nil {
		c.revoked, c.issuedAfter = map[string]time.Time{}, map[string]map[string]bool{}
	}
	c.revoked[k] = e.now()
	delete(c.issuedAfter, k)
	c.mu.Unlock()
	if requireMFA {
		e.SetFault(userKey, Fault{Kind: FaultMFARequired})
	}
}

// ClearCAE forgets every CAE revocation.
func (e *Emulator) ClearCAE() {
	e.cae.mu.Lock()
	e.cae.revoked, e.cae.issuedAfter = nil, nil
	e.cae.mu.Unlock()
}

// noteIssued remembers a user token issued after the user's revocation, within its second.
func (e *Emulator) noteIssued(u *User, token string, now time.Time) {
	k := strings.ToLower(u.Key)
	c := &e.cae
	c.mu.Lock()
	defer c.mu.Unlock()
	at, ok := c.revoked[k]
	if !ok || now.Before(at) || now.Unix() != at.Unix() {
		return
	}
	if c.issuedAfter[k] == nil {
		c.issuedAfter[k] = map[string]bool{}
	}
	c.issuedAfter[k][tokenUTI(token)] = true
}

// caeChallenge tells whether the downstream stub must challenge a verified token of u, and the nbf value its
// claims challenge demands: an insufficient_claims fault, or a revocation the CAE token predates.
func (e *Emulator) caeChallenge(u *User, claims map[string]any, now time.Time) (nbf int64, challenged bool) {
	if e.caeRevoked(u) {
		return now.Unix(), true
	}
	if !claimHas(claims["xms_cc"], "cp1") { // not a CAE token: the resource cannot challenge its client
		return 0, false
	}
	k := strings.ToLower(u.Key)
	c := &e.cae
	c.mu.Lock()
	defer c.mu.Unlock()
	at, ok := c.revoked[k]
	if !ok {
		return 0, false
	}
	iat, _ := numClaim(claims, "iat")
	uti, _ := claims["uti"].(string)
	stale := iat.Unix() < at.Unix() || iat.Unix() == at.Unix() && !c.issuedAfter[k][uti]
	return at.Unix(), stale
}

// caeChallengeHeader is the WWW-Authenticate of Graph's CAE challenge, demanding a token issued at nbf or later.
func caeChallengeHeader(base string, nbf int64) string {
	ch := `{"access_token":{"nbf":{"essential":true, "value":"` + strconv.FormatInt(nbf, 10) + `"}}}`
	return `Bearer realm="", authorization_uri="` + base + `/common/oauth2/authorize", error="insufficient_claims", claims="` +
		base64.StdEncoding.EncodeToString([]byte(ch)) + `"`
}

// tokenUTI reads the uti claim of a token this emulator signed.
func tokenUTI(token string) string {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return ""
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return ""
	}
	var c struct {
		UTI string `json:"uti"`
	}
	_ = json.Unmarshal(payload, &c)
	return c.UTI
}

// caeRoutes are the control API of CAE and of the token request log.
func (e *Emulator) caeRoutes(m *http.ServeMux) {
	m.HandleFunc("POST /_emulator/cae/{user}", e.handleRevokeCAE)
	m.HandleFunc("DELETE /_emulator/cae", e.handleClearCAE)
	m.HandleFunc("GET /_emulator/token-requests", e.handleTokenRequests)
	m.HandleFunc("DELETE /_emulator/token-requests", e.handleResetTokenRequests)
	m.HandleFunc("GET /_emulator/tenants", e.handleTenants)
}

// handleRevokeCAE: POST /_emulator/cae/{user}[?mfa=true] raises a CAE critical event for the user.
func (e *Emulator) handleRevokeCAE(w http.ResponseWriter, r *http.Request) {
	user := r.PathValue("user")
	if e.userByKey(user) == nil {
		controlError(w, http.StatusNotFound, "unknown user %q", user)
		return
	}
	mfa, err := strconv.ParseBool(cmp.Or(r.URL.Query().Get("mfa"), "false"))
	if err != nil {
		controlError(w, http.StatusBadRequest, "bad mfa %q: true or false", r.URL.Query().Get("mfa"))
		return
	}
	e.RevokeCAE(user, mfa)
	w.WriteHeader(http.StatusNoContent)
}

func (e *Emulator) handleClearCAE(w http.ResponseWriter, r *http.Request) {
	e.ClearCAE()
	w.WriteHeader(http.StatusNoContent)
}

// handleTenants: GET /_emulator/tenants lists the tenants served, the first one first.
func (e *Emulator) handleTenants(w http.ResponseWriter, r *http.Request) {
	type tenant struct {
		ID     string `json:"id"`
		Domain string `json:"domain"`
		Users  []User `json:"users"`
	}
	out := []tenant{{e.tenant, e.domain, slices.Clone(e.cfg.Users)}}
	for _, t := range e.otherTenants() {
		out = append(out, tenant{t.tenant, t.domain, slices.Clone(t.cfg.Users)})
	}
	writeControlJSON(w, http.StatusOK, out)
}
