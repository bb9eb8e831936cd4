package contract

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// The sidecar endpoints answer in the Entra auth sidecar's shape: RFC 9457 problem details, as its endpoints
// return them with TypedResults.Problem (AzureAD/microsoft-identity-web,
// src/Microsoft.Identity.Web.Sidecar/Endpoints/AuthorizationHeaderEndpoint.cs and ValidateRequestEndpoints.cs),
// with ASP.NET Core's type and title for the status (dotnet/aspnetcore,
// src/Shared/ProblemDetails/ProblemDetailsDefaults.cs). What that sidecar loses rides along as extension members
// (the contract's error, reason, claims, scopes, correlation_id, retry_after) and in the WWW-Authenticate and
// Retry-After headers, which its clients ignore.

// problemDetailsDefaults are ASP.NET Core's type and title by status.
var problemDetailsDefaults = map[int][2]string{
	400: {"https://tools.ietf.org/html/rfc9110#section-15.5.1", "Bad Request"},
	401: {"https://tools.ietf.org/html/rfc9110#section-15.5.2", "Unauthorized"},
	403: {"https://tools.ietf.org/html/rfc9110#section-15.5.4", "Forbidden"},
	404: {"https://tools.ietf.org/html/rfc9110#section-15.5.5", "Not Found"},
	405: {"https://tools.ietf.org/html/rfc9110#section-15.5.6", "Method Not Allowed"},
	500: {"https://tools.ietf.org/html/rfc9110#section-15.6.1", "An error occurred while processing your request."},
	502: {"https://tools.ietf.org/html/rfc9110#section-15.6.3", "Bad Gateway"},
	503: {"https://tools.ietf.org/html/rfc9110#section-15.6.4", "Service Unavailable"},
	504: {"https://tools.ietf.org/html/rfc9110#section-15.6.5", "Gateway Timeout"},
}

// problemDetails is the body: the RFC 9457 members first, then the contract's.
type problemDetails struct {
	Type   string `json:"type,omitempty"`
	Title  string `json:"title,omitempty"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
	*Problem
}

// WriteProblemDetails sends p as application/problem+json with its challenge headers.
func (p *Problem) WriteProblemDetails(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "application/problem+json")
	h.Set("Cache-Control", "no-store")
	if p.Status == http.StatusUnauthorized || p.Code == CodeInsufficientScope {
		h.Set("WWW-Authenticate", p.challenge())
	}
	if p.RetryAfterSeconds > 0 {
		h.Set("Retry-After", strconv.Itoa(p.RetryAfterSeconds))
	}
	d := problemDefaults(p.Status)
	body, _ := json.Marshal(problemDetails{Type: d[0], Title: d[1], Status: p.Status, Detail: p.Description, Problem: p})
	w.WriteHeader(p.Status)
	_, _ = w.Write(append(body, '\n'))
}

func problemDefaults(status int) [2]string {
	if d, ok := problemDetailsDefaults[status]; ok {
		return d
	}
	return [2]string{"", http.StatusText(status)}
}

// InvalidRequest is the answer for a request the proxy cannot act on as sent: an unknown downstream API, an
// override it does not take. Retrying the same request will not help.
func InvalidRequest(description string) *Problem {
	return &Problem{Status: http.StatusBadRequest, Code: CodeInvalidRequest, Description: description}
}

// NotFound is the answer for a path the proxy does not serve.
func NotFound(description string) *Problem {
	return &Problem{Status: http.StatusNotFound, Code: CodeInvalidRequest, Description: description}
}

// MethodNotAllowed is the answer for a method an endpoint does not take.
func MethodNotAllowed(description string) *Problem {
	return &Problem{Status: http.StatusMethodNotAllowed, Code: CodeInvalidRequest, Description: description}
}

// CallerNotAllowed is the answer for a caller from a network the proxy does not serve: the sidecar endpoints are
// for the application beside it (loopback), as the Entra auth sidecar's are (LocalCallerRestriction.cs answers
// 403).
func CallerNotAllowed() *Problem {
	return &Problem{Status: http.StatusForbidden, Code: CodeAccessDenied, Reason: "caller_not_local",
		Description: "only callers on the loopback interface (or a configured allowed network) may use this endpoint"}
}

// UpstreamUnreachable is the answer when the transparent proxy could not reach the downstream API.
func UpstreamUnreachable() *Problem {
	return &Problem{Status: http.StatusBadGateway, Code: CodeServerError,
		Description: "the downstream API could not be reached"}
}
