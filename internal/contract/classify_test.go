package contract

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tokeninjector/caddy-token-injector/internal/acquire"
	"github.com/tokeninjector/caddy-token-injector/internal/callerauth"
	"github.com/tokeninjector/caddy-token-injector/internal/entra"
	"github.com/tokeninjector/caddy-token-injector/internal/session"
	"github.com/tokeninjector/caddy-token-injector/internal/tokencache"
	"go.uber.org/zap/zapcore"
)

func entraBody(code string, codes []int, suberror, claims string) []byte {
	b, _ := json.Marshal(map[string]any{
		"error": code, "error_description": fmt.Sprintf("AADSTS%d: text. Trace ID: t Correlation ID: c-1", codes[0]),
		"error_codes": codes, "suberror": suberror, "claims": claims, "correlation_id": "c-1", "trace_id": "t",
	})
	return b
}

func TestDecide(t *testing.T) {
	const claims = `{"access_token":{"capolids":{"essential":true,"values":["abc"]}}}`
	scopes := []string{"https://graph.microsoft.com/User.Read"}
	tests := []struct {
		name       string
		err        error
		status     int
		code       string
		reason     string
		retryAfter int
		wantClaims bool
	}{
		{"mfa", entra.ParseError(400, nil, entraBody("invalid_grant", []int{50076}, "basic_action", claims)), 401, CodeInteractionRequired, ReasonMFARequired, 0, true},
		{"mfa enrolment", entra.ParseError(400, nil, entraBody("invalid_grant", []int{50079}, "", "")), 401, CodeInteractionRequired, ReasonMFARequired, 0, false},
		{"external challenge", entra.ParseError(400, nil, entraBody("invalid_grant", []int{50158}, "", claims)), 401, CodeInteractionRequired, ReasonConditionalAccess, 0, true},
		{"consent", entra.ParseError(400, nil, entraBody("invalid_grant", []int{65001}, "consent_required", "")), 401, CodeInteractionRequired, ReasonConsentRequired, 0, false},
		{"consent by suberror only", entra.ParseError(400, nil, entraBody("invalid_grant", []int{1}, "consent_required", "")), 401, CodeInteractionRequired, ReasonConsentRequired, 0, false},
		{"refresh token revoked", entra.ParseError(400, nil, entraBody("invalid_grant", []int{50173}, "", "")), 401, CodeInteractionRequired, ReasonLoginRequired, 0, false},
		{"refresh token expired", entra.ParseError(400, nil, entraBody("invalid_grant", []int{700082}, "", "")), 401, CodeInteractionRequired, ReasonLoginRequired, 0, false},
		{"plain interaction_required", entra.ParseError(400, nil, entraBody("interaction_required", []int{1}, "", "")), 401, CodeInteractionRequired, ReasonInteractionRequired, 0, false},
		{"sso token expired", entra.ParseError(400, nil, entraBody("invalid_grant", []int{500133}, "", "")), 401, CodeInteractionRequired, ReasonSSOTokenExpired, 0, false},
		{"blocked by CA", entra.ParseError(400, nil, entraBody("invalid_grant", []int{53003}, "", "")), 403, CodeAccessDenied, "blocked_by_conditional_access", 0, false},
		{"bad secret", entra.ParseError(401, nil, entraBody("invalid_client", []int{7000215}, "", "")), 502, CodeServerError, "", 0, false},
		{"unknown app", entra.ParseError(400, nil, entraBody("unauthorized_client", []int{700016}, "", "")), 502, CodeServerError, "", 0, false},
		{"invalid scope", entra.ParseError(400, nil, entraBody("invalid_scope", []int{70011}, "", "")), 502, CodeServerError, "", 0, false},
		{"unknown invalid_grant is not interaction", entra.ParseError(400, nil, entraBody("invalid_grant", []int{99999}, "", "")), 502, CodeServerError, "", 0, false},
		{"throttled", entra.ParseError(429, http.Header{"Retry-After": {"7"}}, entraBody("invalid_request", []int{1}, "", "")), 503, CodeTemporarilyUnavailable, "", 7, false},
		{"5xx with interaction-looking body", entra.ParseError(503, nil, entraBody("invalid_grant", []int{50076}, "", claims)), 503, CodeTemporarilyUnavailable, "", 0, false},
		{"temporarily_unavailable", entra.ParseError(400, nil, entraBody("temporarily_unavailable", []int{90010}, "", "")), 503, CodeTemporarilyUnavailable, "", 0, false},
		{"gateway html", entra.ParseError(502, nil, []byte("<html>bad gateway</html>")), 503, CodeTemporarilyUnavailable, "", 0, false},
		{"unreachable", &entra.UnavailableError{Op: "token request", Host: "login.example", Err: errors.New("connection reset by peer")}, 503, CodeTemporarilyUnavailable, "", 0, false},
		{"timeout", &entra.UnavailableError{Timeout: true, Err: context.DeadlineExceeded}, 504, CodeTemporarilyUnavailable, "", 0, false},
		{"misconfigured", &entra.MisconfiguredError{Op: "fetching signing keys", Host: "login.example", Err: errors.New("x509: unknown authority"), Fix: "trust its CA with tls_trust_pool"}, 502, CodeServerError, "", 0, false},
		{"keys misconfigured", fmt.Errorf("%w: %w", callerauth.ErrKeysUnavailable, &entra.MisconfiguredError{Err: errors.New("404")}), 502, CodeServerError, "", 0, false},
		{"keys unreachable", fmt.Errorf("%w: %w", callerauth.ErrKeysUnavailable, &entra.UnavailableError{Err: errors.New("reset")}), 503, CodeTemporarilyUnavailable, "", 0, false},
		{"unreadable answer", &entra.UnexpectedError{Op: "token request", Host: "login.example"}, 502, CodeServerError, "", 0, false},
		{"invalid caller token", &callerauth.InvalidTokenError{Description: "token expired"}, 401, CodeInvalidToken, "", 0, false},
		{"scope not accepted", &callerauth.ForbiddenError{MissingScope: true, Description: "no scope"}, 403, CodeInsufficientScope, "", 0, false},
		{"client app not allowed", &callerauth.ForbiddenError{Description: "app"}, 403, CodeAccessDenied, "client_app_not_allowed", 0, false},
		{"no session", session.ErrNoSession, 401, CodeInteractionRequired, ReasonLoginRequired, 0, false},
		{"sign-in gone", fmt.Errorf("refreshing: %w", acquire.ErrLoginRequired), 401, CodeInteractionRequired, ReasonLoginRequired, 0, false},
		{"bare deadline", fmt.Errorf("wrapped: %w", context.DeadlineExceeded), 504, CodeTemporarilyUnavailable, "", 0, false},
		{"shared store down, even past a deadline", fmt.Errorf("redis: %w: %w", tokencache.ErrStoreUnavailable, context.DeadlineExceeded), 503, CodeTemporarilyUnavailable, "", 1, false},
		{"unknown error", errors.New("something odd"), 502, CodeServerError, "", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := Decide(tt.err, scopes)
			if p.Status != tt.status || p.Code != tt.code || p.Reason != tt.reason || p.RetryAfterSeconds != tt.retryAfter {
				t.Fatalf("got %d %s/%s retry %d, want %d %s/%s retry %d", p.Status, p.Code, p.Reason, p.RetryAfterSeconds,
					tt.status, tt.code, tt.reason, tt.retryAfter)
			}
			if (p.Claims == claims) != tt.wantClaims {
				t.Fatalf("claims = %q", p.Claims)
			}
			if p.Code == CodeServerError && (p.LogMessage == "" || p.LogLevel != zapcore.ErrorLevel) {
				t.Fatal("a server error must tell the operator what to fix, at error level")
			}
			if p.Code == CodeTemporarilyUnavailable && (p.LogMessage == "" || p.LogLevel != zapcore.WarnLevel) {
				t.Fatal("an outage must log its cause, at warning level")
			}
		})
	}
}

func TestConfigurationLogNamesTheCodeAndFix(t *testing.T) {
	p := Decide(entra.ParseError(401, nil, entraBody("invalid_client", []int{7000215}, "", "")), nil)
	if !strings.Contains(p.LogMessage, "AADSTS7000215") || !strings.Contains(p.LogMessage, "client_secret") {
		t.Fatalf("log message %q", p.LogMessage)
	}
}

func TestWriteInteractionRequired(t *testing.T) {
	const claims = `{"access_token":{"acrs":{"essential":true,"value":"c1"}}}`
	p := Decide(entra.ParseError(400, nil, entraBody("invalid_grant", []int{50076}, "basic_action", claims)), []string{"a/User.Read"})
	rec := httptest.NewRecorder()
	p.Write(rec)
	if rec.Code != 401 || rec.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("status %d type %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	wa := rec.Header().Get("WWW-Authenticate")
	wantClaims := `claims="` + base64.StdEncoding.EncodeToString([]byte(claims)) + `"`
	if !strings.HasPrefix(wa, `Bearer error="interaction_required"`) || !strings.Contains(wa, wantClaims) {
		t.Fatalf("WWW-Authenticate %q", wa)
	}
	var body map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatal(err)
	}
	if body["error"] != "interaction_required" || body["reason"] != "mfa_required" || body["claims"] != claims ||
		body["correlation_id"] != "c-1" || fmt.Sprint(body["scopes"]) != "[a/User.Read]" {
		t.Fatalf("body %v", body)
	}
}

func TestWriteUnavailableHasRetryAfterAndNoChallenge(t *testing.T) {
	rec := httptest.NewRecorder()
	Decide(entra.ParseError(429, http.Header{"Retry-After": {"12"}}, nil), nil).Write(rec)
	if rec.Code != 503 || rec.Header().Get("Retry-After") != "12" || rec.Header().Get("WWW-Authenticate") != "" {
		t.Fatalf("status %d headers %v", rec.Code, rec.Header())
	}
	if !strings.Contains(rec.Body.String(), `"error":"temporarily_unavailable"`) {
		t.Fatal(rec.Body.String())
	}
}

func TestMisconfigurationLogNamesTheCauseAndFix(t *testing.T) {
	err := fmt.Errorf("%w: %w", callerauth.ErrKeysUnavailable, &entra.MisconfiguredError{Op: "fetching signing keys",
		Host: "login.example", Err: errors.New("x509: certificate signed by unknown authority"), Fix: "trust its CA with tls_trust_pool"})
	p := Decide(err, nil)
	for _, want := range []string{"fetching signing keys", "login.example", "unknown authority", "tls_trust_pool"} {
		if !strings.Contains(p.LogMessage, want) {
			t.Errorf("log message %q lacks %q", p.LogMessage, want)
		}
	}
}

func TestRetryAfterIsClamped(t *testing.T) {
	for _, v := range []string{"999999999999", "86401", "9223372036854775807"} {
		if p := Decide(entra.ParseError(429, http.Header{"Retry-After": {v}}, nil), nil); p.RetryAfterSeconds != 86400 {
			t.Errorf("Retry-After %s -> %d, want 86400", v, p.RetryAfterSeconds)
		}
	}
	for _, v := range []string{"-5", "soon", "1e9", ""} {
		if p := Decide(entra.ParseError(429, http.Header{"Retry-After": {v}}, nil), nil); p.RetryAfterSeconds != 0 {
			t.Errorf("Retry-After %q -> %d, want none", v, p.RetryAfterSeconds)
		}
	}
}

func TestRetryAfterDate(t *testing.T) {
	h := http.Header{"Retry-After": {time.Now().Add(30 * time.Second).UTC().Format(http.TimeFormat)}}
	if p := Decide(entra.ParseError(503, h, nil), nil); p.RetryAfterSeconds < 28 || p.RetryAfterSeconds > 31 {
		t.Fatalf("retry after %d", p.RetryAfterSeconds)
	}
}

func TestChallengeNeverCarriesQuotesFromTheCaller(t *testing.T) {
	rec := httptest.NewRecorder()
	InvalidToken("audience \"x\\\", evil=\"1\" \r\nX: y\u00e9").Write(rec)
	wa := rec.Header().Get("WWW-Authenticate")
	if strings.Count(wa, `"`) != 4 || strings.ContainsAny(wa, "\\\r\n") {
		t.Fatalf("unsafe challenge %q", wa)
	}
}
