package signin

import (
	"net/http"
	"net/url"
	"strings"
	"unicode"
)

// maxReturnPath bounds return paths; they travel in a cookie.
const maxReturnPath = 2048

// SafeReturnPath returns raw when it is a path on this origin that every browser resolves to this origin, and
// ("/", false) otherwise. It accepts only a path that starts with exactly one "/" and contains no backslash, no
// control character, whitespace or non-ASCII byte, and checks again after each round of percent-decoding, so
// that "/%2F/evil", "/%5Cevil" and "/%09/evil" are refused too. Dot segments are refused as well.
func SafeReturnPath(raw string) (string, bool) {
	if !safeRawPath(raw) {
		return "/", false
	}
	for s, rounds := raw, 0; ; rounds++ {
		d, err := url.PathUnescape(s)
		if err != nil {
			return "/", false
		}
		if d == s {
			break
		}
		if rounds == 3 || !safeDecodedPath(d) {
			return "/", false
		}
		s = d
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" ||
		!strings.HasPrefix(u.Path, "/") || strings.HasPrefix(u.Path, "//") {
		return "/", false
	}
	return raw, true
}

func safeRawPath(s string) bool {
	if len(s) == 0 || len(s) > maxReturnPath || s[0] != '/' {
		return false
	}
	if len(s) > 1 && (s[1] == '/' || s[1] == '\\') {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f || c == '\\' {
			return false
		}
	}
	return !hasDotSegment(s)
}

// slashLike are characters some URL parsers or users read as a slash.
const slashLike = "\uff0f\uff3c\u2215\u2044\u29f8\u29f9\ufe68"

func safeDecodedPath(s string) bool {
	if strings.HasPrefix(s, "//") || strings.HasPrefix(s, "/\\") || strings.ContainsAny(s, "\\"+slashLike) {
		return false
	}
	for _, r := range s {
		if r != ' ' && (unicode.IsControl(r) || unicode.IsSpace(r) || r == '\u2028' || r == '\u2029') {
			return false
		}
	}
	return !hasDotSegment(s)
}

// hasDotSegment reports a "." or ".." segment in the path part, which browsers resolve away ("/.//evil" becomes
// "//evil" after resolution).
func hasDotSegment(s string) bool {
	path, _, _ := strings.Cut(s, "?")
	path, _, _ = strings.Cut(path, "#")
	for _, seg := range strings.Split(path, "/") {
		if seg == "." || seg == ".." {
			return true
		}
	}
	return false
}

// StripCallbackReferer removes a Referer that points at the callback: a browser (or HTTP client) that follows the
// callback's redirect may send the callback URL, authorization code and all, with the next request, and neither
// the upstream nor the access log may see it.
func (h *Handler) StripCallbackReferer(r *http.Request) {
	v := r.Header["Referer"]
	if len(v) == 0 || v[0] == "" {
		return
	}
	ref, callback := v[0], h.callbackPath
	// Browsers send a Referer with most requests: parse only one that can name the callback (without '%', its
	// path is as written).
	if !strings.Contains(ref, callback) && !strings.Contains(ref, "%") {
		return
	}
	if u, err := url.Parse(ref); err != nil || strings.HasPrefix(u.Path, callback) {
		r.Header.Del("Referer")
	}
}
