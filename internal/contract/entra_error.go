package contract

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// EntraError is a refusal from Entra's token endpoint: the HTTP status plus the JSON error body, which real Entra
// sends as {"error","error_description","error_codes","suberror","claims","correlation_id","trace_id",...}.
type EntraError struct {
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

// ParseEntraError reads a token-endpoint error response. A body that is not Entra's JSON (a gateway's HTML page)
// still yields an EntraError carrying the status, so that 5xx and 429 are classified as transient.
func ParseEntraError(status int, header http.Header, body []byte) *EntraError {
	e := &EntraError{}
	if json.Unmarshal(body, e) != nil {
		e = &EntraError{}
	}
	e.StatusCode = status
	e.RetryAfter = parseRetryAfter(header.Get("Retry-After"))
	return e
}

func (e *EntraError) Error() string {
	code := e.Code
	if code == "" {
		code = "http " + strconv.Itoa(e.StatusCode)
	}
	if len(e.Codes) > 0 {
		return fmt.Sprintf("entra refused the request: %s (AADSTS%d)", code, e.Codes[0])
	}
	return "entra refused the request: " + code
}

// HasCode reports whether Entra named AADSTS code n.
func (e *EntraError) HasCode(n ...int) bool {
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
func (e *EntraError) AADSTS() string {
	if len(e.Codes) == 0 {
		return ""
	}
	return "AADSTS" + strconv.Itoa(e.Codes[0])
}

// Unavailable is a failure to get any answer from Entra: a refused or reset connection, a TLS failure, a timeout.
type Unavailable struct {
	// Timeout is true when the call ran out of time, which the contract reports as 504.
	Timeout bool
	Err     error
}

func (u *Unavailable) Error() string {
	if u.Timeout {
		return "entra did not answer in time: " + u.Err.Error()
	}
	return "entra is unreachable: " + u.Err.Error()
}

func (u *Unavailable) Unwrap() error { return u.Err }

// AsEntraError unwraps err to an *EntraError.
func AsEntraError(err error) (*EntraError, bool) {
	var e *EntraError
	ok := errors.As(err, &e)
	return e, ok
}

func parseRetryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if secs, err := strconv.Atoi(v); err == nil && secs >= 0 {
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := time.Until(t); d > 0 {
			return d
		}
	}
	return 0
}
