package contract

import (
	"errors"
	"net/http"

	"go.uber.org/zap/zapcore"

	"github.com/tokeninjector/caddy-token-injector/internal/entra"
)

// DecideCodeRedemption maps a failed redemption of an authorization code at the sign-in callback. Entra's
// invalid_grant there means the browser brought a bad, expired or replayed code (AADSTS70008, 54005, 9002313) or
// a PKCE verifier that does not match (AADSTS501481): anyone can send such a callback, so it is the browser's
// problem (400, logged at debug), never the proxy's configuration. Everything else is Decide's answer.
func DecideCodeRedemption(err error, scopes []string) *Problem {
	var e *entra.Error
	if !errors.As(err, &e) || e.Code != "invalid_grant" || e.Transient() || e.HasCode(blockedCodes...) {
		return Decide(err, scopes)
	}
	return &Problem{Status: http.StatusBadRequest, Code: CodeInvalidRequest,
		Description:   "the sign-in response has expired, was already used or does not match this sign-in; start the sign-in again",
		CorrelationID: e.CorrelationID, LogLevel: zapcore.DebugLevel,
		LogMessage: "sign-in callback: Entra refused the authorization code (" + e.AADSTS() + " invalid_grant): " +
			"a bad, expired or replayed code or a PKCE mismatch; the browser must start again"}
}
