package entra

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// FuzzParseError: any status, Retry-After and body parse without a panic into an Error whose RetryAfter is within
// [0, 24h] (and exact for small whole seconds), which is transient for every 5xx and 429, and whose Error() text
// depends only on the OAuth code, the first AADSTS number and the status: never on Entra's prose, claims or ids.
func FuzzParseError(f *testing.F) {
	mfa := `{"error":"invalid_grant","error_description":"AADSTS50076: Due to a configuration change made by your ` +
		`administrator, or because you moved to a new location, you must use multi-factor authentication to access ` +
		`'00000003-0000-0000-c000-000000000000'. Trace ID: 0b7ba5c1-2c2c-4e1a-9f0a-6a2cbd1b0a00 Correlation ID: ` +
		`5a3c0b21-8a76-4bb3-9d36-1f2a4b6c7d8e Timestamp: 2025-03-01 12:00:00Z","error_codes":[50076],` +
		`"timestamp":"2025-03-01 12:00:00Z","trace_id":"0b7ba5c1-2c2c-4e1a-9f0a-6a2cbd1b0a00",` +
		`"correlation_id":"5a3c0b21-8a76-4bb3-9d36-1f2a4b6c7d8e","error_uri":"https://login.microsoftonline.com/error?code=50076",` +
		`"suberror":"basic_action","claims":"{\"access_token\":{\"capolids\":{\"essential\":true,\"values\":[\"c1\"]}}}"}`
	bodies := []string{
		mfa,
		`{"error":"invalid_grant","error_description":"AADSTS65001: The user or administrator has not consented to use the application.","error_codes":[65001],"suberror":"consent_required"}`,
		`{"error":"invalid_grant","error_description":"AADSTS700082: The refresh token has expired due to inactivity.","error_codes":[700082]}`,
		`{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided.","error_codes":[7000215]}`,
		`{"error":"invalid_request","error_description":"AADSTS90002: Tenant 'nosuch' not found.","error_codes":[90002]}`,
		`{"error":"temporarily_unavailable","error_description":"AADSTS50196: The server terminated an operation because it encountered a client request loop.","error_codes":[50196]}`,
		`{"error":"interaction_required","error_description":"AADSTS50158: External security challenge not satisfied.","error_codes":[50158,1],"claims":"{}"}`,
		`{"error":"invalid_grant","error_codes":[]}`,
		`{"error":"","error_codes":[-1]}`,
		`{"error_codes":["x"]}`,
		`{"error":7}`,
		`<html><body><h1>502 Bad Gateway</h1></body></html>`,
		`null`, `[]`, ``, `{`, `{"error":"a","error":"b"}`,
	}
	retryAfters := []string{"", "0", "3", "120", "86400", "86401", "9223372036854775807", "99999999999999999999",
		"-1", "-9223372036854775808", "1.5", " 5", "soon", "Wed, 21 Oct 2015 07:28:00 GMT",
		"Fri, 31 Dec 2100 23:59:59 GMT", "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994"}
	statuses := []int{400, 401, 403, 404, 429, 500, 502, 503, 504, 200, 0, -1, 999}
	for i, b := range bodies {
		f.Add(statuses[i%len(statuses)], retryAfters[i%len(retryAfters)], []byte(b))
	}
	for i, ra := range retryAfters {
		f.Add(statuses[(i+3)%len(statuses)], ra, []byte(mfa))
	}

	f.Fuzz(func(t *testing.T, status int, retryAfter string, body []byte) {
		h := http.Header{}
		if retryAfter != "" {
			h.Set("Retry-After", retryAfter)
		}
		e := ParseError(status, h, body)
		if e == nil {
			t.Fatal("ParseError returned nil")
		}
		if e.StatusCode != status {
			t.Fatalf("StatusCode = %d, want %d", e.StatusCode, status)
		}
		if e.RetryAfter < 0 || e.RetryAfter > 24*time.Hour {
			t.Fatalf("RetryAfter = %v for %q, want within [0, 24h]", e.RetryAfter, retryAfter)
		}
		if secs, err := strconv.ParseInt(retryAfter, 10, 64); err == nil && secs >= 0 && secs <= 86400 {
			if want := time.Duration(secs) * time.Second; e.RetryAfter != want {
				t.Fatalf("RetryAfter = %v for %q, want %v", e.RetryAfter, retryAfter, want)
			}
		}
		if (status == http.StatusTooManyRequests || status >= 500) && !e.Transient() {
			t.Fatalf("status %d is not transient", status)
		}

		msg := e.Error()
		// The text must not change when everything but the code, the codes and the status does.
		other := *e
		other.Description, other.Suberror, other.Claims = "D", "S", "C"
		other.CorrelationID, other.TraceID, other.RetryAfter = "X", "T", time.Minute
		if got := other.Error(); got != msg {
			t.Fatalf("Error() depends on more than code and AADSTS: %q vs %q", msg, got)
		}
		code := e.Code
		if code == "" {
			code = "http " + strconv.Itoa(status)
		}
		want := "entra refused the request: " + code
		if len(e.Codes) > 0 {
			want += fmt.Sprintf(" (AADSTS%d)", e.Codes[0])
		}
		if msg != want {
			t.Fatalf("Error() = %q, want %q", msg, want)
		}
		// The description may appear only by coincidence: inside the code, or short enough to be in the fixed text.
		if d := e.Description; len(d) > 16 && !strings.Contains(code, d) && strings.Contains(msg, d) {
			t.Fatalf("Error() %q carries the description %q", msg, d)
		}
	})
}
