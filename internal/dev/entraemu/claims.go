package entraemu

import (
	"net/http"
	"slices"
	"sync"
)

// TokenRequest is what the emulator remembers of one token endpoint request: enough to check what a client
// declared (client capabilities) and which claims challenge it answered. It holds no credential.
type TokenRequest struct {
	Tenant   string `json:"tenant"` // the {tenant} path segment as requested
	Grant    string `json:"grant"`  // GrantOBO, GrantRefreshToken, ...
	ClientID string `json:"client_id"`
	// Claims is the claims request parameter as sent (JSON), "" when there was none.
	Claims string `json:"claims,omitempty"`
	// Capabilities are the client capabilities in Claims (access_token.xms_cc.values), e.g. ["cp1"].
	Capabilities []string `json:"capabilities,omitempty"`
	// Challenge tells whether Claims asks for more than capabilities: a claims challenge being answered.
	Challenge bool `json:"challenge"`
}

// maxRequestLog bounds the remembered token requests; the oldest are forgotten first.
const maxRequestLog = 1000

// requestLog is the emulator's memory of recent token requests.
type requestLog struct {
	mu   sync.Mutex
	list []TokenRequest
}

// recordTokenRequest remembers a parsed token request with a known grant.
func (e *Emulator) recordTokenRequest(tr *tokenRequest) {
	claims := tr.form.Get("claims")
	caps, challenge := requestClaims(claims)
	clientID := tr.form.Get("client_id")
	if id, _, ok := tr.r.BasicAuth(); ok && clientID == "" {
		clientID = id
	}
	rec := TokenRequest{Tenant: tr.r.PathValue("tenant"), Grant: tr.grant, ClientID: clientID, Claims: claims,
		Capabilities: caps, Challenge: challenge}
	l := &e.requests
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.list) == maxRequestLog {
		l.list = slices.Delete(l.list, 0, 1)
	}
	l.list = append(l.list, rec)
}

// TokenRequests returns the recent token requests (at most 1000), oldest first.
func (e *Emulator) TokenRequests() []TokenRequest {
	e.requests.mu.Lock()
	defer e.requests.mu.Unlock()
	return slices.Clone(e.requests.list)
}

// ResetTokenRequests forgets the remembered token requests.
func (e *Emulator) ResetTokenRequests() {
	e.requests.mu.Lock()
	e.requests.list = nil
	e.requests.mu.Unlock()
}

func (e *Emulator) handleTokenRequests(w http.ResponseWriter, r *http.Request) {
	writeControlJSON(w, http.StatusOK, e.TokenRequests())
}

func (e *Emulator) handleResetTokenRequests(w http.ResponseWriter, r *http.Request) {
	e.ResetTokenRequests()
	w.WriteHeader(http.StatusNoContent)
}
