package session

import (
	"net/http"
	"net/textproto"
	"strings"
)

// PreLoginCookiePrefix starts the name of every pre-login cookie of package signin, after any __Host- (HTTPS) or
// __Secure- (earlier versions) prefix. It is part of the proxy's cookie namespace, which StripCookie removes.
const PreLoginCookiePrefix = "token_injector_login_"

// SecureRequest reports whether cookies for r can be Secure: true unless r is plain http to localhost, 127.0.0.1
// or ::1, so that local development over http works. A TLS-terminating load balancer in front of the proxy makes
// r.TLS nil, which is why any other host counts as secure; X-Forwarded-Proto is not trusted.
func SecureRequest(r *http.Request) bool {
	if r.TLS != nil {
		return true
	}
	host := r.Host
	if host == "" && r.URL != nil {
		host = r.URL.Host
	}
	return !isLoopback(host)
}

// isLoopback reports whether host, a Host header's value, is localhost, 127.0.0.1 or ::1: with or without a port,
// brackets or a final dot, in any case. It reads host in place, without splitting or lowering a copy: it runs on
// every session request. Anything malformed is not loopback, so its cookies stay Secure.
func isLoopback(host string) bool {
	if rest, ok := strings.CutPrefix(host, "["); ok {
		end := strings.IndexByte(rest, ']')
		if end < 0 {
			return false
		}
		if port := rest[end+1:]; port != "" && (port[0] != ':' || strings.IndexByte(port[1:], ':') >= 0) {
			return false
		}
		host = rest[:end]
	} else if i := strings.IndexByte(host, ':'); i >= 0 && strings.IndexByte(host[i+1:], ':') < 0 {
		host = host[:i] // name:port; an IPv6 address without brackets has more than one colon
	}
	host = strings.TrimSuffix(host, ".")
	return host == "localhost" || host == "127.0.0.1" || host == "::1" ||
		len(host) == len("localhost") && strings.EqualFold(host, "localhost")
}

// secure reports whether the cookie for r carries Secure. Partitioned and SameSite=None cookies, and names with a
// __Host-/__Secure- prefix, are refused by browsers without it, so they keep it even on http://localhost (where
// Chromium and Firefox accept Secure cookies anyway).
func (m *Manager) secure(r *http.Request) bool {
	return m.cfg.Partitioned || m.cfg.SameSite == http.SameSiteNoneMode || hasSecurePrefix(m.cfg.CookieName) ||
		SecureRequest(r)
}

func hasSecurePrefix(name string) bool {
	return strings.HasPrefix(name, "__Host-") || strings.HasPrefix(name, "__Secure-")
}

// CookieName returns the session cookie's name for r: the configured name, or the default for r's security.
func (m *Manager) CookieName(r *http.Request) string {
	if m.cfg.CookieName != "" {
		return m.cfg.CookieName
	}
	if m.secure(r) {
		return DefaultCookieName
	}
	return DefaultInsecureCookieName
}

// Partitioned reports whether session cookies are CHIPS-partitioned; the sign-in endpoints then hand the session
// over to the framed add-in, whose cookie partition differs from the sign-in window's.
func (m *Manager) Partitioned() bool { return m.cfg.Partitioned }

// cookie builds the session cookie for r; maxAge < 0 expires it.
func (m *Manager) cookie(r *http.Request, value string, maxAge int) *http.Cookie {
	return &http.Cookie{
		Name:        m.CookieName(r),
		Value:       value,
		Path:        "/",
		MaxAge:      maxAge,
		Secure:      m.secure(r),
		HttpOnly:    true,
		SameSite:    m.cfg.SameSite,
		Partitioned: m.cfg.Partitioned,
	}
}

// StripCookie removes every cookie of the proxy's namespace from r's Cookie headers so upstreams never see one,
// whatever r's scheme: "token_injector" and the pre-login cookies (PreLoginCookiePrefix...), the configured
// CookieName, each also with a __Host- or __Secure- prefix. Other cookies keep their bytes and order; a Cookie
// line without a proxy cookie is left untouched, and the header is deleted when nothing is left. A nil Manager (a
// route without sign-in, whose site may still carry another route's session cookie) strips the default names.
// When it deletes a one-line header, it returns that line's slice, which nothing refers to any more: the
// caller may reuse it for a header of its own, and save an allocation.
func (m *Manager) StripCookie(r *http.Request) (freed []string) {
	lines := r.Header["Cookie"]
	var out []string // from the first line that changes: the lines before it, then what is kept
	changed := false
	for i, line := range lines {
		kept, removed := m.stripFromLine(line)
		if removed && !changed {
			changed, out = true, lines[:i:i] // capped: an append copies, never writes over lines
		}
		if changed && (kept != "" || !removed) { // a line without proxy cookies stays as it was, even empty
			out = append(out, kept)
		}
	}
	switch {
	case !changed:
	case len(out) == 0:
		delete(r.Header, "Cookie")
		if len(lines) == 1 {
			return lines
		}
	default:
		r.Header["Cookie"] = out
	}
	return nil
}

// isProxyCookie reports whether a cookie named name belongs to the proxy's namespace (see StripCookie).
func (m *Manager) isProxyCookie(name string) bool {
	bare := unprefixed(name)
	return bare == DefaultInsecureCookieName || strings.HasPrefix(bare, PreLoginCookiePrefix) ||
		m != nil && m.cfg.CookieName != "" && bare == unprefixed(m.cfg.CookieName)
}

// unprefixed drops a __Host- or __Secure- prefix, matched without case as browsers do (RFC 6265bis).
func unprefixed(name string) string {
	if !strings.HasPrefix(name, "__") { // '_' has no case: most names are decided here, on every request
		return name
	}
	for _, p := range []string{"__Host-", "__Secure-"} {
		if len(name) >= len(p) && strings.EqualFold(name[:len(p)], p) {
			return name[len(p):]
		}
	}
	return name
}

// stripFromLine drops every proxy cookie pair from one Cookie header line, keeping the other pairs and the
// separators between them as they were. A line without proxy cookies, and a line of proxy cookies only, cost no
// allocation.
func (m *Manager) stripFromLine(line string) (string, bool) {
	found, alone := m.hasProxyCookie(line)
	switch {
	case !found:
		return line, false
	case alone: // the session cookie and nothing else, a browser's usual line for an API's host
		return "", true
	}
	var kept strings.Builder
	first := true
	for rest := line; ; {
		p, name, after, more := nextPair(rest)
		if !m.isProxyCookie(name) {
			if !first {
				kept.WriteByte(';')
			}
			kept.WriteString(p)
			first = false
		}
		if !more {
			break
		}
		rest = after
	}
	return strings.Trim(kept.String(), " \t"), true
}

// hasProxyCookie reports whether a Cookie header line holds a proxy cookie, reading the pairs' names only, and
// whether that cookie is all the line holds.
func (m *Manager) hasProxyCookie(line string) (found, alone bool) {
	for rest, more := line, true; more; {
		var p, name string
		p, name, rest, more = nextPair(rest)
		if m.isProxyCookie(name) {
			return true, len(p) == len(line)
		}
	}
	return false, false
}

// nextPair splits a Cookie header line's first pair off: the pair as it is, its name trimmed, and the rest.
func nextPair(line string) (pair, name, rest string, more bool) {
	pair, rest, more = cutByte(line, ';')
	name, _, _ = cutByte(pair, '=')
	return pair, textproto.TrimString(name), rest, more
}

// cutByte is strings.Cut for a one-byte separator. The cookie code runs on every session request, and Cut's
// general search costs a layer more for each of a line's pairs.
func cutByte(s string, sep byte) (before, after string, found bool) {
	if i := strings.IndexByte(s, sep); i >= 0 {
		return s[:i], s[i+1:], true
	}
	return s, "", false
}
