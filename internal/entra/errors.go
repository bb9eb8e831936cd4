package entra

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// Error is a refusal from Entra: the HTTP status plus the JSON error body, which Entra sends as
// {"error","error_description","error_codes","suberror","claims","correlation_id","trace_id",...}.
type Error struct {
	StatusCode    int
	Code          string `json:"error"`
	Description   string `json:"error_description"`
	Codes         []int  `json:"error_codes"`
	Suberror      string `json:"suberror"`
	Claims        string `json:"claims"`
	CorrelationID string `json:"correlation_id"`
	TraceID       string `json:"trace_id"`
	// RetryAfter is the server's Retry-After, zero when it sent none.
	RetryAfter time.Duration `json:"-"`
}

// ParseError reads an error response. A body that is not Entra's JSON (a gateway's HTML page) still yields an
// Error carrying the status, so that 5xx and 429 are recognised as transient.
func ParseError(status int, header http.Header, body []byte) *Error {
	e := &Error{}
	if json.Unmarshal(body, e) != nil {
		e = &Error{}
	}
	e.StatusCode = status
	e.RetryAfter = parseRetryAfter(header.Get("Retry-After"))
	return e
}

// Error names the OAuth error and the AADSTS code; it never carries the description, which is Entra's prose.
func (e *Error) Error() string {
	code := e.Code
	if code == "" {
		code = "http " + strconv.Itoa(e.StatusCode)
	}
	if len(e.Codes) > 0 {
		return fmt.Sprintf("entra refused the request: %s (AADSTS%d)", code, e.Codes[0])
	}
	return "entra refused the request: " + code
}

// HasCode reports whether Entra named one of the AADSTS codes n.
func (e *Error) HasCode(n ...int) bool {
	for _, c := range e.Codes {
		for _, want := range n {
			if c == want {
				return true
			}
		}
	}
	return false
}

// AADSTS returns the first AADSTS code as text ("AADSTS50076"), or "" when Entra sent none.
func (e *Error) AADSTS() string {
	if len(e.Codes) == 0 {
		return ""
	}
	return "AADSTS" + strconv.Itoa(e.Codes[0])
}

// Transient reports whether retrying later can succeed: Entra is overloaded, throttling or failing.
func (e *Error) Transient() bool {
	return e.StatusCode == http.StatusTooManyRequests || e.StatusCode >= 500 || e.Code == "temporarily_unavailable"
}

// UnavailableError is a failure to get any answer from Entra that retrying can fix: a refused or reset
// connection, a timeout, a 5xx from a discovery or key document.
type UnavailableError struct {
	Op      string // what the proxy was doing: "token request", "fetching signing keys", ...
	Host    string // the host it called
	Timeout bool   // the call ran out of time (the contract answers 504)
	Err     error
}

func (u *UnavailableError) Error() string {
	what := "unreachable"
	if u.Timeout {
		what = "did not answer in time"
	}
	return fmt.Sprintf("%s: %s %s: %v", u.Op, u.Host, what, u.Err)
}

func (u *UnavailableError) Unwrap() error { return u.Err }

// MisconfiguredError is a failure only the operator can fix: a certificate that does not verify, an unknown
// tenant or host, a document that does not match the authority. Retrying will not help.
type MisconfiguredError struct {
	Op   string
	Host string
	Err  error
	// Fix tells the operator what to change.
	Fix string
}

func (m *MisconfiguredError) Error() string {
	return fmt.Sprintf("%s: %s: %v; %s", m.Op, m.Host, m.Err, m.Fix)
}

func (m *MisconfiguredError) Unwrap() error { return m.Err }

// maxRetryAfter bounds what a server may ask: a day.
const maxRetryAfter = 24 * time.Hour

func parseRetryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil && secs >= 0 {
		return min(time.Duration(min(secs, int64(maxRetryAfter/time.Second)))*time.Second, maxRetryAfter)
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := time.Until(t); d > 0 {
			return min(d, maxRetryAfter)
		}
	}
	return 0
}
