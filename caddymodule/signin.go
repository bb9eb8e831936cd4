package caddymodule

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/tokeninjector/caddy-token-injector/internal/session"
	"github.com/tokeninjector/caddy-token-injector/internal/signin"
)

// SignIn enables proxy-managed sign-in for callers without a bearer token: the authorization code flow with PKCE,
// a sealed session cookie that holds only a session id, and tokens kept server side and refreshed silently.
// Register https://<host><Path>/callback as a Web redirect URI of the app registration.
type SignIn struct {
	// CookieSecrets are base64 encodings of 32 random bytes (openssl rand -base64 32). The first seals cookies;
	// every one opens them, so a new secret goes first and the old one stays until its cookies have expired.
	// Required.
	CookieSecrets []string `json:"cookie_secrets,omitempty"`
	// Path is where the login, callback, logout, me and handoff endpoints live. Default: /.auth.
	Path string `json:"path,omitempty"`
	// SameSite is the session cookie's SameSite: lax, strict or none. Default: lax.
	SameSite string `json:"same_site,omitempty"`
	// Partitioned marks the session cookie Partitioned (CHIPS), with SameSite=None and Secure, for add-ins that
	// Office on the web frames cross-site. Default: false.
	Partitioned bool `json:"partitioned,omitempty"`
	// IdleTimeout ends a session unused this long. It may be a placeholder (see Duration). Default: 8h.
	IdleTimeout Duration `json:"idle_timeout,omitempty"`
	// AbsoluteTimeout ends a session this long after sign-in. It may be a placeholder. Default: 168h (7 days).
	AbsoluteTimeout Duration `json:"absolute_timeout,omitempty"`
	// LoginTimeout is how long a user may take from /login to the callback (Entra's pages, MFA included); a later
	// callback is refused with a fresh sign-in link. Code redemptions are limited in total to what the replay
	// memory holds for this long: 28 a second at 10m, 278 at 1m. Between 1m and 1h. It may be a placeholder.
	// Default: 10m.
	LoginTimeout Duration `json:"login_timeout,omitempty"`
	// EndSession makes logout also sign the user out of Entra (a redirect to its end-session endpoint).
	// Default: false.
	EndSession bool `json:"end_session,omitempty"`
}

// provisionSignIn builds the handler's session manager and sign-in endpoints. Sessions live in the registration's
// shared store, so they survive reloads and cookie-secret rotation.
func (h *Handler) provisionSignIn(cfg *signInSettings, authority string) error {
	secrets := cfg.CookieSecrets
	if len(secrets) == 0 {
		return errors.New("sign_in: cookie_secret: required (base64 of 32 random bytes, e.g. openssl rand -base64 32)")
	}
	keys, err := session.ParseKeys(secrets)
	if err != nil {
		return fmt.Errorf("sign_in: %w", err)
	}
	if slices.ContainsFunc(keys, isPublishedKey) {
		h.app.usePublishedKey(authority) // refused at Start unless the config emulates that authority
	}
	sameSite, err := parseSameSite(cfg.SameSite)
	if err != nil {
		return err
	}
	h.sessions, err = session.NewManager(session.Config{
		Keys: keys, SameSite: sameSite, Partitioned: cfg.Partitioned,
		IdleTimeout: cfg.IdleTimeout, AbsoluteTimeout: cfg.AbsoluteTimeout,
	}, h.state.sessions)
	if err != nil {
		return fmt.Errorf("sign_in: %w", err)
	}
	sc := signin.Config{Path: cfg.Path, Scopes: h.scopes, CORS: h.cors, EndSession: cfg.EndSession,
		LoginTimeout: cfg.LoginTimeout, Logger: h.logger, ClientAddress: clientIP, Marks: h.state.marks,
		TenantAllowed: h.state.validator.TakesTenant}
	if h.state.shared != nil {
		sc.Used = h.state.shared.used
	}
	h.signIn, err = signin.New(sc, h.state.engine, h.sessions)
	if err != nil {
		return fmt.Errorf("sign_in: %w", err)
	}
	h.answer.LoginURL = h.loginURL
	return nil
}

// clientIP is the address Caddy attributes the request to (its trusted_proxies rules applied), which the sign-in
// rate limits key by.
func clientIP(r *http.Request) string {
	if ip, _ := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string); ip != "" {
		return ip
	}
	host, _, _ := net.SplitHostPort(r.RemoteAddr)
	return host
}

var sameSiteModes = map[string]http.SameSite{"": http.SameSiteLaxMode, "lax": http.SameSiteLaxMode,
	"strict": http.SameSiteStrictMode, "none": http.SameSiteNoneMode}

func parseSameSite(v string) (http.SameSite, error) {
	if m, ok := sameSiteModes[strings.ToLower(v)]; ok {
		return m, nil
	}
	return 0, fmt.Errorf("sign_in: same_site: %q is not lax, strict or none", v)
}

// unmarshalSignIn reads a sign_in block. Syntax:
//
//	sign_in {
//		cookie_secret    <base64 key> [<older key>...]
//		path             <path>          # default /.auth
//		same_site        lax|strict|none # default lax
//		partitioned
//		idle_timeout     <duration>      # default 8h
//		absolute_timeout <duration>      # default 168h
//		login_timeout    <duration>      # default 10m, 1m to 1h
//		end_session
//	}
func unmarshalSignIn(d *caddyfile.Dispenser) (*SignIn, error) {
	s := new(SignIn)
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		var err error
		switch d.Val() {
		case "cookie_secret", "cookie_secrets":
			err = listArg(d, &s.CookieSecrets)
		case "path":
			err = checkedArg(d, &s.Path, checkSignInPath)
		case "same_site":
			err = checkedArg(d, &s.SameSite, checkSameSite)
		case "partitioned":
			s.Partitioned = true
		case "end_session":
			s.EndSession = true
		case "idle_timeout":
			err = durationArg(d, &s.IdleTimeout)
		case "absolute_timeout":
			err = durationArg(d, &s.AbsoluteTimeout)
		case "login_timeout":
			err = durationArg(d, &s.LoginTimeout)
		default:
			return nil, d.Errf("sign_in: unknown subdirective %q", d.Val())
		}
		if err != nil {
			return nil, err
		}
	}
	return s, nil
}
