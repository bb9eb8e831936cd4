package sidecar

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/tokeninjector/caddy-token-injector/internal/contract"
)

// ValidateResult is GET /Validate's answer: Models/ValidateAuthorizationHeaderResult.cs (protocol, token, claims),
// camelCase. Claims are the validated token's payload as it is.
type ValidateResult struct {
	Protocol string          `json:"protocol"`
	Token    string          `json:"token"`
	Claims   json.RawMessage `json:"claims"`
}

// serveValidate is Endpoints/ValidateRequestEndpoints.cs: it proves the caller's token (and the configured caller
// rules, its AzureAd:Scopes check) and returns its claims. The token goes back only to the caller that sent it.
func (s *Server) serveValidate(w http.ResponseWriter, r *http.Request) {
	_, raw, err := s.prove(r)
	if err != nil {
		s.fail(w, r, err, nil)
		return
	}
	claims, ok := payload(raw)
	if !ok { // the validator parsed it; this cannot happen for a token it accepted
		s.refuse(w, r, contract.InvalidRequest("Failed to decode token claims"))
		return
	}
	writeOK(w, ValidateResult{Protocol: "Bearer", Token: raw, Claims: claims})
}

// payload decodes a validated JWT's claims.
func payload(raw string) (json.RawMessage, bool) {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return nil, false
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil || !json.Valid(b) {
		return nil, false
	}
	return b, true
}
