package entraemu

import (
	"net/http"
	"net/url"
	"strings"
)

// An app registration's redirect URIs belong to platforms, and the platform decides how a code is redeemed:
//   - web: by a server, never cross-origin (AADSTS9002326); a confidential client authenticates (AADSTS7000218);
//   - spa: only cross-origin, from the browser (AADSTS9002327), with PKCE (AADSTS9002325) and no secret; the
//     refresh tokens it yields are spa tokens, redeemed the same way.
// A browser's request to the token endpoint is cross-origin by nature (login.microsoftonline.com is never the
// app's origin), and Entra tells it by the Origin header: so does the emulator.

// RedirectType is the platform of a redirect URI in an app registration.
type RedirectType string

// Redirect URI platforms, as the app manifest's replyUrlsWithType names them.
const (
	RedirectWeb RedirectType = "Web"
	RedirectSPA RedirectType = "Spa"
)

// redirectTarget is a registered redirect URI that a requested one matched.
type redirectTarget struct {
	registered string
	typ        RedirectType
}

// matchRedirect finds the registered redirect URI that requested names: an exact match first, then, for loopback
// URIs (http or https, localhost or 127.0.0.1), one that differs only in the port. Entra's "localhost exceptions"
// ignore the port for every platform type (the login server then "picks one arbitrarily and uses the behavior
// associated with that redirect URI (web-, native-, or spa-type)"); it does not support [::1]. Scheme, host,
// path and query must still match exactly.
func (a *App) matchRedirect(requested string) (redirectTarget, bool) {
	lists := []struct {
		typ  RedirectType
		uris []string
	}{{RedirectWeb, a.RedirectURIs}, {RedirectSPA, a.SPARedirectURIs}}
	for _, l := range lists {
		for _, u := range l.uris {
			if u == requested {
				return redirectTarget{u, l.typ}, true
			}
		}
	}
	want, ok := loopbackWithoutPort(requested)
	if !ok {
		return redirectTarget{}, false
	}
	for _, l := range lists {
		for _, u := range l.uris {
			if got, ok := loopbackWithoutPort(u); ok && got == want {
				return redirectTarget{u, l.typ}, true
			}
		}
	}
	return redirectTarget{}, false
}

// loopbackWithoutPort returns a loopback redirect URI with its port removed, or false for any other URI.
func loopbackWithoutPort(raw string) (string, bool) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.User != nil || u.Fragment != "" {
		return "", false
	}
	switch u.Hostname() {
	case "localhost", "127.0.0.1":
	default:
		return "", false
	}
	path := u.EscapedPath()
	if path == "" {
		path = "/" // Entra answers a path-less URI with a trailing slash: both name the same place
	}
	return u.Scheme + "://" + u.Hostname() + path + "?" + u.RawQuery, true
}

// crossOrigin reports whether a token request came from a browser script on another origin.
func crossOrigin(r *http.Request) bool { return r.Header.Get("Origin") != "" }

// browserRedemption applies the platform rules to a token request once its client is known. spa reports a
// redemption of a spa code or spa refresh token, which needs no client secret. Requests whose code or refresh
// token is unknown are left to the grant, which reports them.
func (e *Emulator) browserRedemption(tr *tokenRequest) (spa bool, a *aadError) {
	spa, known := e.spaGrant(tr)
	switch {
	case !known:
		if crossOrigin(tr.r) && tr.grant != GrantAuthorizationCode && tr.grant != GrantRefreshToken {
			return false, errCrossOriginNotSPA(tr.r.Header.Get("Origin"))
		}
		return false, nil
	case spa && !crossOrigin(tr.r):
		return false, errSPANotCrossOrigin()
	case !spa && crossOrigin(tr.r):
		return false, errCrossOriginNotSPA(tr.r.Header.Get("Origin"))
	}
	return spa, nil
}

// spaGrant looks up the code or refresh token of tr: whether it belongs to the spa platform, and whether it is known.
func (e *Emulator) spaGrant(tr *tokenRequest) (spa, known bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	switch tr.grant {
	case GrantAuthorizationCode:
		if c, ok := e.codes[hashKey(tr.form.Get("code"))]; ok {
			return c.spa, true
		}
	case GrantRefreshToken:
		if rec, ok := e.refresh[hashKey(tr.form.Get("refresh_token"))]; ok {
			return rec.spa, true
		}
	}
	return false, false
}

// markSPARefresh records that the refresh token tok was issued to a browser (spa) redemption.
func (e *Emulator) markSPARefresh(tok string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if rec, ok := e.refresh[hashKey(tok)]; ok {
		rec.spa = true
	}
}

func errCrossOriginNotSPA(origin string) *aadError {
	return &aadError{400, "invalid_request", 9002326, "Cross-origin token redemption is permitted only for the 'Single-Page Application' client-type. Request origin: '" + strings.ReplaceAll(origin, "'", "") + "'.", "", ""}
}

func errSPANotCrossOrigin() *aadError {
	return &aadError{400, "invalid_request", 9002327, "Tokens issued for the 'Single-Page Application' client-type may only be redeemed via cross-origin requests.", "", ""}
}

func errPKCERequiredForSPA() *aadError {
	return &aadError{400, "invalid_request", 9002325, "Proof Key for Code Exchange is required for cross-origin authorization code redemption.", "", ""}
}
