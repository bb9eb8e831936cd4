// Package cors answers cross-origin requests from the configured origins, for the proxied routes and the sign-in
// endpoints alike.
package cors

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"unicode"
)

// Policy answers cross-origin requests from the configured origins, with credentials. An origin not listed gets no
// CORS header at all, so the browser keeps the response from its scripts.
type Policy struct {
	// AllowedOrigins are the origins allowed, normalized (NormalizeOrigin), as New makes them. Default: none.
	AllowedOrigins []string
}

// preflightMaxAge is how long browsers may cache a preflight answer, in seconds (Chromium caps it at 7200).
const preflightMaxAge = "600"

const allowedMethods = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"

// Preflight answers an OPTIONS preflight from an allowed origin with 204 and reports whether it answered. A
// preflight from any other origin, and any other request, is left to the caller.
func (c Policy) Preflight(w http.ResponseWriter, r *http.Request) bool {
	if r.Method != http.MethodOptions {
		return false
	}
	method := first(r.Header, "Access-Control-Request-Method")
	if method == "" {
		return false
	}
	origin := first(r.Header, "Origin")
	if !c.Allowed(origin) {
		return false
	}
	h := w.Header()
	addVary(h, "Origin", "Access-Control-Request-Method", "Access-Control-Request-Headers")
	h.Set("Access-Control-Allow-Origin", origin)
	h.Set("Access-Control-Allow-Credentials", "true")
	methods := allowedMethods
	if isToken(method) && !strings.Contains(", "+methods+",", ", "+method+",") {
		methods += ", " + method
	}
	h.Set("Access-Control-Allow-Methods", methods)
	h.Set("Access-Control-Allow-Headers", allowHeaders(r.Header.Values("Access-Control-Request-Headers")))
	h.Set("Access-Control-Max-Age", preflightMaxAge)
	w.WriteHeader(http.StatusNoContent)
	return true
}

// Decorate adds the CORS response headers for an allowed origin: the origin echoed (never "*", which browsers
// refuse with credentials), credentials allowed, and WWW-Authenticate and Retry-After readable by scripts, so a
// cross-origin client can act on the 401 contract.
func (c Policy) Decorate(w http.ResponseWriter, r *http.Request) {
	if len(c.AllowedOrigins) == 0 {
		return
	}
	origin := first(r.Header, "Origin")
	if !c.Allowed(origin) {
		return
	}
	h := w.Header()
	addVary(h, "Origin")
	h.Set("Access-Control-Allow-Origin", origin)
	h.Set("Access-Control-Allow-Credentials", "true")
	h.Set("Access-Control-Expose-Headers", "WWW-Authenticate, Retry-After")
}

// first returns the first value of the header key, which must be canonical: Header.Get canonicalizes its key on
// every request, and this runs on every request.
func first(h http.Header, key string) string {
	if v := h[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// New checks origins and returns the policy with them normalized. Errors name the field.
func New(origins []string) (Policy, error) {
	c := Policy{AllowedOrigins: make([]string, 0, len(origins))}
	for _, o := range origins {
		n, err := NormalizeOrigin(o)
		if err != nil {
			return Policy{}, fmt.Errorf("allowed_origins: %w", err)
		}
		c.AllowedOrigins = append(c.AllowedOrigins, n)
	}
	return c, nil
}

// Allowed reports whether origin (an Origin header) is one of the allowed origins, which New normalized.
// "null" and "*" never are.
func (c Policy) Allowed(origin string) bool {
	if len(c.AllowedOrigins) == 0 || origin == "" {
		return false
	}
	// As browsers send it, an origin is already normal: found as it is, it needs no parse. ("*" and "null" are
	// never found, even in a Policy not made by New.)
	if origin != "*" && origin != "null" && slices.Contains(c.AllowedOrigins, origin) {
		return true
	}
	o, err := NormalizeOrigin(origin)
	return err == nil && slices.Contains(c.AllowedOrigins, o)
}

// NormalizeOrigin returns origin as scheme://host[:port], lower-case, default port dropped. It refuses anything
// that is not an http(s) origin: paths, queries, credentials, "null", "*".
func NormalizeOrigin(origin string) (string, error) {
	// A browser sends an origin's host as ASCII (punycode), never percent-encoded: url.Parse would decode "%80" into
	// bytes that a second normalization reads differently (a Unicode space it trims). This also refuses a zone
	// (fe80::1%eth0): it names an interface of this machine, not a site.
	if strings.Contains(origin, "%") {
		return "", fmt.Errorf("%q is not an origin (want scheme://host[:port], without percent-encoding)", origin)
	}
	u, err := url.Parse(strings.TrimSuffix(strings.TrimSpace(origin), "/"))
	if err != nil {
		return "", err
	}
	if strings.ContainsFunc(u.Host, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) {
		return "", fmt.Errorf("%q is not an origin (want scheme://host[:port])", origin)
	}
	scheme := strings.ToLower(u.Scheme)
	if (scheme != "https" && scheme != "http") || u.Hostname() == "" || u.User != nil || u.Path != "" ||
		u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" || strings.ContainsAny(u.Host, "*@/\\") {
		return "", fmt.Errorf("%q is not an origin (want scheme://host[:port])", origin)
	}
	host := strings.ToLower(u.Host)
	if (scheme == "https" && strings.HasSuffix(host, ":443")) || (scheme == "http" && strings.HasSuffix(host, ":80")) {
		host = host[:strings.LastIndexByte(host, ':')]
	}
	return scheme + "://" + host, nil
}

// allowHeaders is the requested headers that are valid field names, plus Authorization and Content-Type.
func allowHeaders(requested []string) string {
	out := []string{"Authorization", "Content-Type"}
	seen := map[string]bool{"authorization": true, "content-type": true}
	for _, line := range requested {
		for _, name := range strings.Split(line, ",") {
			name = strings.TrimSpace(name)
			if !isToken(name) || seen[strings.ToLower(name)] || len(out) >= 64 {
				continue
			}
			seen[strings.ToLower(name)] = true
			out = append(out, name)
		}
	}
	return strings.Join(out, ", ")
}

// isToken reports whether s is an RFC 9110 token (a method or field name).
func isToken(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0 {
			continue
		}
		return false
	}
	return true
}

// addVary adds names to Vary unless already listed.
func addVary(h http.Header, names ...string) {
	have := map[string]bool{}
	for _, line := range h.Values("Vary") {
		for _, v := range strings.Split(line, ",") {
			have[strings.ToLower(strings.TrimSpace(v))] = true
		}
	}
	for _, n := range names {
		if !have[strings.ToLower(n)] {
			h.Add("Vary", n)
			have[strings.ToLower(n)] = true
		}
	}
}
