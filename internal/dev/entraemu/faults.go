package entraemu

import (
	"fmt"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// FaultKind names an injected failure.
type FaultKind string

// Fault kinds. Interaction kinds make the token endpoint answer as if Entra demanded user
// interaction; infrastructure kinds simulate outages; insufficient_claims is a CAE revocation
// enforced by the downstream API stub.
const (
	FaultMFARequired        FaultKind = "mfa_required"                  // 400 invalid_grant AADSTS50076, suberror basic_action, claims challenge
	FaultConsentRequired    FaultKind = "consent_required"              // 400 invalid_grant AADSTS65001, suberror consent_required
	FaultRefreshExpired     FaultKind = "refresh_token_expired"         // refresh grants only: AADSTS700082
	FaultRefreshRevoked     FaultKind = "refresh_token_revoked"         // refresh grants only: AADSTS50173
	FaultBlockedByCA        FaultKind = "blocked_by_conditional_access" // 400 invalid_grant AADSTS53003
	FaultDown               FaultKind = "down"                          // 503 temporarily_unavailable AADSTS90033
	FaultSlow               FaultKind = "slow"                          // sleep Delay, then answer normally
	FaultThrottled          FaultKind = "throttled"                     // 429 with Retry-After
	FaultConnectionReset    FaultKind = "connection_reset"              // TCP reset, no response
	FaultBadGateway         FaultKind = "bad_gateway"                   // 502 with an HTML body
	FaultInsufficientClaims FaultKind = "insufficient_claims"           // downstream stub: 401 CAE challenge until a token is requested with claims
)

// Fault is one injected failure. Count 0 means "until cleared"; n means the next n matching
// requests only.
type Fault struct {
	Kind       FaultKind
	Delay      time.Duration // slow
	RetryAfter time.Duration // throttled; default 5s
	Claims     string        // overrides the claims challenge (mfa_required, blocked_by_conditional_access)
	Count      int
}

type faultState struct {
	f         Fault
	remaining int // 0 = unlimited
}

func (k FaultKind) valid() bool {
	switch k {
	case FaultMFARequired, FaultConsentRequired, FaultRefreshExpired, FaultRefreshRevoked, FaultBlockedByCA,
		FaultDown, FaultSlow, FaultThrottled, FaultConnectionReset, FaultBadGateway, FaultInsufficientClaims:
		return true
	}
	return false
}

func (k FaultKind) infra() bool {
	switch k {
	case FaultDown, FaultSlow, FaultThrottled, FaultConnectionReset, FaultBadGateway:
		return true
	}
	return false
}

// SetFault injects f for userKey's token requests; userKey "" (or "*") applies to every user.
// Each key holds one fault (a new one replaces it) and a user's own fault takes precedence over
// the global one.
//
// Global infrastructure faults (down, slow, throttled, connection_reset, bad_gateway) fire before
// anything else; all other faults fire once the request is valid and its user is known (from the
// OBO assertion, the refresh token or the code), just before a token would be issued. A token
// from an MFA sign-in (MintOptions.MFA, or a picker sign-in that met an MFA requirement) satisfies
// mfa_required, as a real Conditional Access policy would be. An interactive sign-in clears the
// user's mfa_required, consent_required and refresh_token_* faults.
//
// SetFault panics on an unknown kind, a programming error; the control API validates input first.
func (e *Emulator) SetFault(userKey string, f Fault) {
	if !f.Kind.valid() {
		panic(fmt.Sprintf("entraemu: unknown fault kind %q", f.Kind))
	}
	if userKey == "*" {
		userKey = ""
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.faults[strings.ToLower(userKey)] = &faultState{f: f, remaining: max(f.Count, 0)}
}

// ClearFaults removes every injected fault.
func (e *Emulator) ClearFaults() {
	e.mu.Lock()
	defer e.mu.Unlock()
	clear(e.faults)
}

func (e *Emulator) clearFault(userKey string, kinds ...FaultKind) {
	e.mu.Lock()
	defer e.mu.Unlock()
	k := strings.ToLower(userKey)
	if st := e.faults[k]; st != nil {
		for _, kind := range kinds {
			if st.f.Kind == kind {
				delete(e.faults, k)
			}
		}
	}
}

// Faults returns the injected faults by user key ("" = global).
func (e *Emulator) Faults() map[string]Fault {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string]Fault, len(e.faults))
	for k, st := range e.faults {
		f := st.f
		if st.remaining > 0 {
			f.Count = st.remaining
		}
		out[k] = f
	}
	return out
}

// takeFault picks the fault to fire for this request, consuming one use of a counted fault.
// accept decides whether a fault applies here (kind, grant, MFA already satisfied ...).
func (e *Emulator) takeFault(keys []string, accept func(Fault) bool) (Fault, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, k := range keys {
		st := e.faults[k]
		if st == nil || !accept(st.f) {
			continue
		}
		if st.remaining > 0 {
			st.remaining--
			if st.remaining == 0 {
				delete(e.faults, k)
			}
		}
		return st.f, true
	}
	return Fault{}, false
}

// globalInfraFault runs before anything else on the token endpoint: an outage does not care who asks.
func (e *Emulator) globalInfraFault(w http.ResponseWriter, r *http.Request) bool {
	f, ok := e.takeFault([]string{""}, func(f Fault) bool { return f.Kind.infra() })
	return ok && e.fire(w, r, f, nil)
}

// userFault evaluates faults once the user of a token request is known.
func (e *Emulator) userFault(w http.ResponseWriter, tr *tokenRequest, u *User, s subject, resAppID string) bool {
	accept := func(global bool) func(Fault) bool {
		return func(f Fault) bool {
			switch {
			case global && f.Kind.infra(): // already evaluated at the start
				return false
			case f.Kind == FaultInsufficientClaims:
				return false
			case f.Kind == FaultRefreshExpired || f.Kind == FaultRefreshRevoked:
				return tr.grant == GrantRefreshToken
			case f.Kind == FaultMFARequired:
				return !s.mfa() // a token from an MFA sign-in satisfies the policy
			}
			return true
		}
	}
	f, ok := e.takeFault([]string{strings.ToLower(u.Key)}, accept(false))
	if !ok {
		f, ok = e.takeFault([]string{""}, accept(true))
	}
	if !ok {
		return false
	}
	return e.fire(w, tr.r, f, &faultCtx{tr: tr, resAppID: resAppID, s: s})
}

type faultCtx struct {
	tr       *tokenRequest
	resAppID string
	s        subject
}

// fire answers the request as fault f. It returns false when the request should go on (slow).
func (e *Emulator) fire(w http.ResponseWriter, r *http.Request, f Fault, fc *faultCtx) bool {
	e.counters.add(func(c *Counters) { c.Faults++ })
	switch f.Kind {
	case FaultSlow:
		t := time.NewTimer(f.Delay)
		defer t.Stop()
		select {
		case <-t.C:
			return false
		case <-r.Context().Done():
			return true // the client gave up: nothing to answer
		}
	case FaultConnectionReset:
		e.counters.add(func(c *Counters) { c.Errors++ })
		resetConnection(w)
		return true
	case FaultThrottled:
		e.counters.add(func(c *Counters) { c.Errors++ })
		ra := f.RetryAfter
		if ra <= 0 {
			ra = 5 * time.Second
		}
		// Entra's throttling answer is a bare 429 with Retry-After, not an AADSTS JSON body.
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(ra.Seconds()))))
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = w.Write([]byte("Too Many Requests"))
		return true
	case FaultBadGateway:
		e.counters.add(func(c *Counters) { c.Errors++ })
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusBadGateway)
		_, _ = w.Write([]byte("<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n</body>\r\n</html>\r\n"))
		return true
	case FaultDown:
		e.tokenError(w, r, errTransient())
		return true
	}
	var a *aadError
	switch f.Kind {
	case FaultMFARequired:
		claims := f.Claims
		if claims == "" {
			claims = `{"access_token":{"capolids":{"essential":true,"values":["` + e.capolID + `"]}}}`
		}
		a = errMFARequired(fc.resAppID, claims)
	case FaultBlockedByCA:
		a = errBlockedByCA(f.Claims)
	case FaultConsentRequired:
		a = errConsentRequired(fc.tr.app.ClientID, appName(fc.tr.app))
	case FaultRefreshExpired:
		a = errRefreshExpired(fc.s.authTime, e.cfg.RefreshTokenLifetime)
	case FaultRefreshRevoked:
		a = errRefreshRevoked(fc.s.authTime, e.now())
	default:
		return false
	}
	e.tokenError(w, r, a)
	return true
}

// resetConnection drops the TCP connection without a response (RST where possible). Over HTTP/2,
// where hijacking is impossible, the stream is reset instead (http.ErrAbortHandler).
func resetConnection(w http.ResponseWriter) {
	// ResponseController follows Unwrap chains, so this also works behind wrapping servers (Caddy).
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	raw := conn
	if nc, ok := conn.(interface{ NetConn() net.Conn }); ok { // *tls.Conn
		raw = nc.NetConn()
	}
	if tcp, ok := raw.(*net.TCPConn); ok {
		_ = tcp.SetLinger(0) // close with RST, like a middlebox dropping the connection
	}
	_ = raw.Close()
}
