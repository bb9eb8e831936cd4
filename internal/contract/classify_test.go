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
)

func entraBody(code string, codes []int, suberror, claims string) []byte {
	b, _ := json.Marshal(map[string]any{
		"error": code, "error_description": fmt.Sprintf("AADSTS%d: text. Trace ID: t Correlation ID: c-1", codes[0]),
		"error_codes": codes, "suberror": suberror, "claims": claims, "correlation_id": "c-1", "trace_id": "t",
	})
	return b
}

func TestClassify(t *testing.T) {
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
		{"mfa", ParseEntraError(400, nil, entraBody("invalid_grant", []int{50076}, "basic_action", claims)), 401, CodeInteractionRequired, ReasonMFARequired, 0, true},
		{"mfa enrolment", ParseEntraError(400, nil, entraBody("invalid_grant", []int{50079}, "", "")), 401, CodeInteractionRequired, ReasonMFARequired, 0, false},
		{"external challenge", ParseEntraError(400, nil, entraBody("invalid_grant", []int{50158}, "", claims)), 401, CodeInteractionRequired, ReasonConditionalAccess, 0, true},
		{"consent", ParseEntraError(400, nil, entraBody("invalid_grant", []int{65001}, "consent_required", "")), 401, CodeInteractionRequired, ReasonConsentRequired, 0, false},
		{"consent by suberror only", ParseEntraError(400, nil, entraBody("invalid_grant", []int{1}, "consent_required", "")), 401, CodeInteractionRequired, ReasonConsentRequired, 0, false},
		{"refresh token revoked", ParseEntraError(400, nil, entraBody("invalid_grant", []int{50173}, "", "")), 401, CodeInteractionRequired, ReasonLoginRequired, 0, false},
		{"refresh token expired", ParseEntraError(400, nil, entraBody("invalid_grant", []int{700082}, "", "")), 401, CodeInteractionRequired, ReasonLoginRequired, 0, false},
		{"plain interaction_required", ParseEntraError(400, nil, entraBody("interaction_required", []int{1}, "", "")), 401, CodeInteractionRequired, ReasonInteractionRequired, 0, false},
		{"sso token expired", ParseEntraError(400, nil, entraBody("invalid_grant", []int{500133}, "", "")), 401, CodeInteractionRequired, ReasonSSOTokenExpired, 0, false},
		{"blocked by CA", ParseEntraError(400, nil, entraBody("invalid_grant", []int{53003}, "", "")), 403, CodeAccessDenied, "blocked_by_conditional_access", 0, false},
		{"bad secret", ParseEntraError(401, nil, entraBody("invalid_client", []int{7000215}, "", "")), 502, CodeServerError, "", 0, false},
		{"unknown app", ParseEntraError(400, nil, entraBody("unauthorized_client", []int{700016}, "", "")), 502, CodeServerError, "", 0, false},
		{"invalid scope", ParseEntraError(400, nil, entraBody("invalid_scope", []int{70011}, "", "")), 502, CodeServerError, "", 0, false},
		{"unknown invalid_grant is not interaction", ParseEntraError(400, nil, entraBody("invalid_grant", []int{99999}, "", "")), 502, CodeServerError, "", 0, false},
		{"throttled", ParseEntraError(429, http.Header{"Retry-After": {"7"}}, entraBody("invalid_request", []int{1}, "", "")), 503, CodeTemporarilyUnavailable, "", 7, false},
		{"5xx with interaction-looking body", ParseEntraError(503, nil, entraBody("invalid_grant", []int{50076}, "", claims)), 503, CodeTemporarilyUnavailable, "", 0, false},
		{"temporarily_unavailable", ParseEntraError(400, nil, entraBody("temporarily_unavailable", []int{90010}, "", "")), 503, CodeTemporarilyUnavailable, "", 0, false},
		{"gateway html", ParseEntraError(502, nil, []byte("<html>bad gateway</html>")), 503, CodeTemporarilyUnavailable, "", 0, false},
		{"unreachable", &Unavailable{Err: errors.New("connection reset by peer")}, 503, CodeTemporarilyUnavailable, "", 0, false},
		{"timeout", &Unavailable{Timeout: true, Err: context.DeadlineExceeded}, 504, CodeTemporarilyUnavailable, "", 0, false},
		{"bare deadline", fmt.Errorf("wrapped: %w", context.DeadlineExceeded), 504, CodeTemporarilyUnavailable, "", 0, false},
		{"unknown error", errors.New("something odd"), 502, CodeServerError, "", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := Classify(tt.err, scopes)
			if p.Status != tt.status || p.Code != tt.code || p.Reason != tt.reason || p.RetryAfterSeconds != tt.retryAfter {
				t.Fatalf("got %d %s/%s retry %d, want %d %s/%s retry %d", p.Status, p.Code, p.Reason, p.RetryAfterSeconds,
					tt.status, tt.code, tt.reason, tt.retryAfter)
			}
			if (p.Claims == claims) != tt.wantClaims {
				t.Fatalf("claims = %q", p.Claims)
			}
			if p.Code == CodeServerError && p.LogMessage == "" {
				t.Fatal("a server error must tell the operator what to fix")
			}
		})
	}
}

func TestConfigurationLogNamesTheCodeAndFix(t *testing.T) {
	p := Classify(ParseEntraError(401, nil, entraBody("invalid_client", []int{7000215}, "", "")), nil)
	if !strings.Contains(p.LogMessage, "AADSTS7000215") || !strings.Contains(p.LogMessage, "client_secret") {
		t.Fatalf("log message %q", p.LogMessage)
	}
}

func TestWriteInteractionRequired(t *testing.T) {
	const claims = `{"access_token":{"acrs":{"essential":true,"value":"c1"}}}`
	p := Classify(ParseEntraError(400, nil, entraBody("invalid_grant", []int{50076}, "basic_action", claims)), []string{"a/User.Read"})
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
	Classify(ParseEntraError(429, http.Header{"Retry-After": {"12"}}, nil), nil).Write(rec)
	if rec.Code != 503 || rec.Header().Get("Retry-After") != "12" || rec.Header().Get("WWW-Authenticate") != "" {
		t.Fatalf("status %d headers %v", rec.Code, rec.Header())
	}
	if !strings.Contains(rec.Body.String(), `"error":"temporarily_unavailable"`) {
		t.Fatal(rec.Body.String())
	}
}

func TestRetryAfterDate(t *testing.T) {
	h := http.Header{"Retry-After": {time.Now().Add(30 * time.Second).UTC().Format(http.TimeFormat)}}
	if p := Classify(ParseEntraError(503, h, nil), nil); p.RetryAfterSeconds < 28 || p.RetryAfterSeconds > 31 {
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
