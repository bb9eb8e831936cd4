package contract

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/tokeninjector/caddy-token-injector/internal/entra"
	"go.uber.org/zap/zapcore"
)

func TestDecideCodeRedemption(t *testing.T) {
	scopes := []string{"https://graph.microsoft.com/User.Read"}
	grant := func(codes ...int) error {
		return entra.ParseError(400, nil, entraBody("invalid_grant", codes, "", ""))
	}
	tests := []struct {
		name   string
		err    error
		status int
		code   string
		level  zapcore.Level
	}{
		{"expired code", grant(70008), 400, CodeInvalidRequest, zapcore.DebugLevel},
		{"code already redeemed", grant(54005), 400, CodeInvalidRequest, zapcore.DebugLevel},
		{"malformed code", grant(9002313), 400, CodeInvalidRequest, zapcore.DebugLevel},
		{"PKCE mismatch", grant(501481), 400, CodeInvalidRequest, zapcore.DebugLevel},
		{"unknown invalid_grant", grant(99999), 400, CodeInvalidRequest, zapcore.DebugLevel},
		{"wrapped", errors.Join(errors.New("redeem"), grant(54005)), 400, CodeInvalidRequest, zapcore.DebugLevel},
		// Not the browser's doing: the same answers as Decide.
		{"blocked by CA", grant(53003), 403, CodeAccessDenied, zapcore.InfoLevel},
		{"throttled invalid_grant", entra.ParseError(503, nil, entraBody("invalid_grant", []int{70008}, "", "")), 503, CodeTemporarilyUnavailable, zapcore.WarnLevel},
		{"bad secret", entra.ParseError(401, nil, entraBody("invalid_client", []int{7000215}, "", "")), 502, CodeServerError, zapcore.ErrorLevel},
		{"unreachable", &entra.UnavailableError{Op: "token request", Host: "login.example", Err: errors.New("reset")}, 503, CodeTemporarilyUnavailable, zapcore.WarnLevel},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := DecideCodeRedemption(tt.err, scopes)
			if p.Status != tt.status || p.Code != tt.code {
				t.Fatalf("DecideCodeRedemption = %d %s, want %d %s", p.Status, p.Code, tt.status, tt.code)
			}
			if p.Status == http.StatusBadRequest {
				if p.LogLevel != zapcore.DebugLevel || !strings.Contains(p.Description, "start the sign-in again") ||
					strings.Contains(p.LogMessage, "misconfigured") || strings.Contains(p.LogMessage, "check ") {
					t.Fatalf("problem = %+v", p)
				}
				return
			}
			if want := Decide(tt.err, scopes); p.Status != want.Status || p.LogLevel != want.LogLevel {
				t.Fatalf("did not defer to Decide: %+v, want %+v", p, want)
			}
			if tt.level != zapcore.InfoLevel && p.LogMessage != "" && p.LogLevel != tt.level {
				t.Fatalf("log level = %v, want %v", p.LogLevel, tt.level)
			}
		})
	}
}
