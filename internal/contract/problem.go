// Package contract is the proxy's error contract: the status codes, WWW-Authenticate challenges and JSON bodies that
// clients (Office add-ins, SPAs, the JS client kit) are built on. Every failure of the request path goes through
// Respond (or Decide, for the sign-in endpoints' own pages), so the mapping lives in one place.
package contract

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// The values of the "error" member.
const (
	CodeInvalidToken           = "invalid_token"
	CodeInteractionRequired    = "interaction_required"
	CodeTemporarilyUnavailable = "temporarily_unavailable"
	CodeServerError            = "server_error"
	CodeAccessDenied           = "access_denied"
	CodeInvalidRequest         = "invalid_request"
	CodeInsufficientScope      = "insufficient_scope"
)

// Problem is one answer of the contract.
type Problem struct {
	Status        int      `json:"-"`
	Code          string   `json:"error"`
	Description   string   `json:"error_description,omitempty"`
	Reason        string   `json:"reason,omitempty"`
	Claims        string   `json:"claims,omitempty"`
	Scopes        []string `json:"scopes,omitempty"`
	CorrelationID string   `json:"correlation_id,omitempty"`
	// LoginURL is where the client sends the user to sign in (a popup, an Office dialog, a navigation).
	LoginURL          string `json:"login_url,omitempty"`
	RetryAfterSeconds int    `json:"retry_after,omitempty"`
	// LogMessage, when set, is what the operator must read: one line naming the cause and, when only the
	// operator can fix it, the fix. It is never sent to the client and never contains a token or secret.
	LogMessage string `json:"-"`
	// LogLevel is the level LogMessage is logged at: warn for what retrying fixes, error for what the operator
	// must fix.
	LogLevel zapcore.Level `json:"-"`
}

func (p *Problem) Error() string { return p.Code + ": " + p.Description }

// InvalidToken is the answer for a missing, malformed, expired, wrongly signed or foreign caller token.
func InvalidToken(description string) *Problem {
	return &Problem{Status: http.StatusUnauthorized, Code: CodeInvalidToken, Description: description}
}

// loginRequired is the answer when only a new sign-in helps: no session, or the session's sign-in is gone.
func loginRequired(scopes []string) *Problem {
	return &Problem{Status: http.StatusUnauthorized, Code: CodeInteractionRequired, Reason: ReasonLoginRequired,
		Description: "sign in to continue", Scopes: scopes}
}

// Log writes the problem's one log line: LogMessage at LogLevel when the operator must read it, else a debug
// line naming the refusal.
func (p *Problem) Log(logger *zap.Logger, r *http.Request) {
	if p.LogMessage == "" {
		logger.Debug("request refused", zap.Int("status", p.Status), zap.String("error", p.Code),
			zap.String("reason", p.Reason), zap.String("description", p.Description))
		return
	}
	logger.Log(p.LogLevel, p.LogMessage, zap.Int("status", p.Status), zap.String("correlation_id", p.CorrelationID),
		zap.String("uri", r.URL.Path))
}

// Write sends the problem as JSON with its challenge headers.
func (p *Problem) Write(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	if p.Status == http.StatusUnauthorized || p.Code == CodeInsufficientScope {
		h.Set("WWW-Authenticate", p.challenge())
	}
	if p.RetryAfterSeconds > 0 {
		h.Set("Retry-After", strconv.Itoa(p.RetryAfterSeconds))
	}
	body, _ := json.Marshal(p)
	w.WriteHeader(p.Status)
	_, _ = w.Write(append(body, '\n'))
}

// challenge builds the RFC 6750 WWW-Authenticate value. The claims travel base64-encoded, as Microsoft Graph sends
// them in its CAE challenges; the JSON body carries them verbatim.
func (p *Problem) challenge() string {
	var b strings.Builder
	b.WriteString(`Bearer error=`)
	b.WriteString(quote(p.Code))
	if p.Description != "" {
		b.WriteString(`, error_description=`)
		b.WriteString(quote(p.Description))
	}
	if len(p.Scopes) > 0 {
		b.WriteString(`, scope=`)
		b.WriteString(quote(strings.Join(p.Scopes, " ")))
	}
	if p.Claims != "" {
		b.WriteString(`, claims=`)
		b.WriteString(quote(base64.StdEncoding.EncodeToString([]byte(p.Claims))))
	}
	if p.LoginURL != "" {
		b.WriteString(`, login_url=`)
		b.WriteString(quote(p.LoginURL))
	}
	return b.String()
}

// quote makes a quoted-string of RFC 6750's restricted character set (no '"' or '\\'). Descriptions may carry
// values from a caller's token: quotes become apostrophes, backslashes slashes, control and non-ASCII characters
// are dropped or masked.
func quote(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"':
			b.WriteByte('\'')
		case r == '\\':
			b.WriteByte('/')
		case r < 0x20 || r == 0x7f:
		case r > 0x7e:
			b.WriteByte('?') // header values are ASCII
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
