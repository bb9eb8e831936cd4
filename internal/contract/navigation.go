package contract

import (
	"net/http"
	"strconv"
	"strings"
)

// IsNavigation reports whether r is a browser navigating to a page (which can be redirected to sign-in) rather
// than a script calling an API (which must get the 401 contract instead). Only GET and HEAD qualify, then
// Sec-Fetch-Mode decides; without it, an Accept that prefers text/html over application/json. Requests without
// either header, and XHR/fetch (X-Requested-With, Sec-Fetch-Mode cors/no-cors/same-origin), are not navigations.
func IsNavigation(r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	if r.Header.Get("X-Requested-With") != "" {
		return false
	}
	switch r.Header.Get("Sec-Fetch-Mode") {
	case "navigate":
		return true
	case "":
	default:
		return false
	}
	accept := strings.Join(r.Header.Values("Accept"), ",")
	if strings.TrimSpace(accept) == "" {
		return false
	}
	html := quality(accept, "text", "html")
	return html > 0 && html > quality(accept, "application", "json")
}

// PrefersJSON reports whether an error for r should be the JSON contract rather than an HTML page: scripts
// (X-Requested-With, a non-navigation Sec-Fetch-Mode) and clients whose Accept prefers JSON.
func PrefersJSON(r *http.Request) bool {
	if r.Header.Get("X-Requested-With") != "" {
		return true
	}
	switch r.Header.Get("Sec-Fetch-Mode") {
	case "cors", "same-origin", "no-cors":
		return true
	case "navigate":
		return false
	}
	accept := strings.Join(r.Header.Values("Accept"), ",")
	j := quality(accept, "application", "json")
	return j > 0 && j > quality(accept, "text", "html")
}

// quality returns the q value Accept gives typ/sub, taken from the most specific matching range (RFC 9110
// 12.5.1); 0 when nothing matches.
func quality(accept, typ, sub string) float64 {
	best, bestQ := 0, 0.0
	for _, part := range strings.Split(accept, ",") {
		mediaRange, params, _ := strings.Cut(part, ";")
		t, s, ok := strings.Cut(strings.ToLower(strings.TrimSpace(mediaRange)), "/")
		if !ok {
			continue
		}
		spec := 0
		switch {
		case t == typ && s == sub:
			spec = 3
		case t == typ && s == "*":
			spec = 2
		case t == "*" && s == "*":
			spec = 1
		default:
			continue
		}
		q := 1.0
		for _, p := range strings.Split(params, ";") {
			k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
			if strings.EqualFold(k, "q") {
				if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil && f >= 0 && f <= 1 {
					q = f
				} else {
					q = 0
				}
			}
		}
		if spec > best || (spec == best && q > bestQ) {
			best, bestQ = spec, q
		}
	}
	return bestQ
}
