package caddymodule

import (
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddytls"
)

// DefaultAuthorityHost is the public cloud's sign-in host.
const DefaultAuthorityHost = "https://login.microsoftonline.com"

// Registration is the Entra app registration the proxy acts as, and the cache of tokens it holds for it. Routes
// that share a Registration (through the global token_injector option) share one cache. Every string value may
// use placeholders such as {env.CLIENT_SECRET}; they are resolved when the config loads.
type Registration struct {
	// AuthorityHost is the sign-in host of the cloud: a sovereign cloud's, or the local emulator's.
	// Default: https://login.microsoftonline.com.
	AuthorityHost string `json:"authority_host,omitempty"`
	// Tenant is the directory's tenant ID (a GUID) or a verified domain. Required.
	Tenant string `json:"tenant,omitempty"`
	// ClientID is the application (client) ID of the add-in's web API registration. Required.
	ClientID string `json:"client_id,omitempty"`
	// ClientSecret is a client secret of that registration. Required.
	ClientSecret string `json:"client_secret,omitempty"`
	// Audiences are the aud values accepted in callers' tokens besides ClientID, typically the App ID URI
	// (api://<host>/<client id>). Default: none.
	Audiences []string `json:"audiences,omitempty"`
	// TrustPoolRaw is the set of CAs trusted for calls to AuthorityHost, as a tls.ca_pool.source module.
	// Default: the system's roots.
	TrustPoolRaw json.RawMessage `json:"tls_trust_pool,omitempty" caddy:"namespace=tls.ca_pool.source inline_key=provider"`
	// CacheMaxEntries bounds the token cache: at most this many (user, scope set) tokens are held, the least
	// recently used evicted first. Default: 100000.
	CacheMaxEntries int `json:"cache_max_entries,omitempty"`
	// Timeout bounds every call to Entra. Default: 10s.
	Timeout caddy.Duration `json:"timeout,omitempty"`
	// RefreshBefore is how long before a downstream token expires that an active user's token is renewed in the
	// background. Default: 5m.
	RefreshBefore caddy.Duration `json:"refresh_before,omitempty"`
	// ExpiryMargin is how long before a downstream token expires that the proxy stops forwarding it. Default: 1m.
	ExpiryMargin caddy.Duration `json:"expiry_margin,omitempty"`
	// ClockSkew is the tolerance applied to the exp and nbf of callers' tokens. Default: 1m.
	ClockSkew caddy.Duration `json:"clock_skew,omitempty"`
	// AllowedOrigins are the origins (https://addin.example.com) whose scripts may call the routes cross-origin:
	// their preflights are answered and their responses, 401 bodies included, are readable. They are also the
	// targets of the sign-in popup's message. Default: none.
	AllowedOrigins []string `json:"allowed_origins,omitempty"`
	// SignIn enables proxy-managed sign-in for callers without a bearer token. Default: off; such callers get 401.
	SignIn *SignIn `json:"sign_in,omitempty"`
}

// overlay returns r with every field that o sets taken from o.
func (r Registration) overlay(o *Registration) Registration {
	if o == nil {
		return r
	}
	pick := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	pick(&r.AuthorityHost, o.AuthorityHost)
	pick(&r.Tenant, o.Tenant)
	pick(&r.ClientID, o.ClientID)
	pick(&r.ClientSecret, o.ClientSecret)
	if len(o.Audiences) > 0 {
		r.Audiences = o.Audiences
	}
	if len(o.TrustPoolRaw) > 0 {
		r.TrustPoolRaw = o.TrustPoolRaw
	}
	if len(o.AllowedOrigins) > 0 {
		r.AllowedOrigins = o.AllowedOrigins
	}
	if o.SignIn != nil {
		r.SignIn = o.SignIn
	}
	if o.CacheMaxEntries > 0 {
		r.CacheMaxEntries = o.CacheMaxEntries
	}
	for _, d := range []struct{ dst, v *caddy.Duration }{{&r.Timeout, &o.Timeout}, {&r.RefreshBefore, &o.RefreshBefore},
		{&r.ExpiryMargin, &o.ExpiryMargin}, {&r.ClockSkew, &o.ClockSkew}} {
		if *d.v > 0 {
			*d.dst = *d.v
		}
	}
	return r
}

// resolve returns a copy with placeholders replaced and defaults applied.
func (r Registration) resolve() Registration {
	repl := caddy.NewReplacer()
	r.AuthorityHost = strings.TrimSuffix(repl.ReplaceKnown(r.AuthorityHost, ""), "/")
	if r.AuthorityHost == "" {
		r.AuthorityHost = DefaultAuthorityHost
	}
	r.Tenant = repl.ReplaceKnown(r.Tenant, "")
	r.ClientID = repl.ReplaceKnown(r.ClientID, "")
	r.ClientSecret = repl.ReplaceKnown(r.ClientSecret, "")
	r.Audiences = replaceAll(r.Audiences)
	r.AllowedOrigins = replaceAll(r.AllowedOrigins)
	if r.SignIn != nil {
		s := *r.SignIn
		s.CookieSecrets = replaceAll(s.CookieSecrets)
		s.Path = repl.ReplaceKnown(s.Path, "")
		s.SameSite = repl.ReplaceKnown(s.SameSite, "")
		r.SignIn = &s
	}
	if r.CacheMaxEntries <= 0 {
		r.CacheMaxEntries = 100_000
	}
	setDefault(&r.Timeout, 10*time.Second)
	setDefault(&r.RefreshBefore, 5*time.Minute)
	setDefault(&r.ExpiryMargin, time.Minute)
	setDefault(&r.ClockSkew, time.Minute)
	return r
}

// replaceAll resolves placeholders in each value and drops the values that end up empty.
func replaceAll(values []string) []string {
	repl := caddy.NewReplacer()
	out := make([]string, 0, len(values))
	for _, v := range values {
		if v = repl.ReplaceKnown(v, ""); v != "" {
			out = append(out, v)
		}
	}
	return out
}

func setDefault(d *caddy.Duration, v time.Duration) {
	if *d <= 0 {
		*d = caddy.Duration(v)
	}
}

// validate names the field at fault. r must be resolved.
func (r Registration) validate() error {
	u, err := url.Parse(r.AuthorityHost)
	switch {
	case err != nil || u.Host == "" || u.Scheme != "https" || (u.Path != "" && u.Path != "/") || u.RawQuery != "":
		return fmt.Errorf("authority_host: %q is not an https URL of a host (like %s)", r.AuthorityHost, DefaultAuthorityHost)
	case r.Tenant == "":
		return fmt.Errorf("tenant: required (the directory's tenant ID or domain)")
	case strings.ContainsAny(r.Tenant, "/?#% "):
		return fmt.Errorf("tenant: %q is not a tenant ID or domain", r.Tenant)
	case r.Tenant == "common" || r.Tenant == "organizations" || r.Tenant == "consumers":
		return fmt.Errorf("tenant: %q is not one directory; name the tenant whose users this proxy serves", r.Tenant)
	case r.ClientID == "":
		return fmt.Errorf("client_id: required (the application ID of the app registration)")
	case r.ClientSecret == "":
		return fmt.Errorf("client_secret: required (use a placeholder such as {env.CLIENT_SECRET})")
	}
	return nil
}

// trustedRoots loads the CA pool module, or returns nil for the system roots.
func trustedRoots(ctx caddy.Context, r *Registration) (*x509.CertPool, error) {
	if len(r.TrustPoolRaw) == 0 {
		return nil, nil
	}
	mod, err := ctx.LoadModule(r, "TrustPoolRaw")
	if err != nil {
		return nil, fmt.Errorf("tls_trust_pool: %w", err)
	}
	return mod.(caddytls.CA).CertPool(), nil
}

// settings returns the resolved registration's values for the shared state. r must be resolved.
func (r Registration) settings() settings {
	s := settings{AuthorityHost: r.AuthorityHost, Tenant: r.Tenant, ClientID: r.ClientID, ClientSecret: r.ClientSecret,
		Audiences: r.Audiences, AllowedOrigins: r.AllowedOrigins, CacheMaxEntries: r.CacheMaxEntries,
		Timeout: time.Duration(r.Timeout), RefreshBefore: time.Duration(r.RefreshBefore),
		ExpiryMargin: time.Duration(r.ExpiryMargin), ClockSkew: time.Duration(r.ClockSkew)}
	if si := r.SignIn; si != nil {
		s.SignIn = &signInSettings{CookieSecrets: si.CookieSecrets, Path: si.Path, SameSite: si.SameSite,
			Partitioned: si.Partitioned, EndSession: si.EndSession, IdleTimeout: time.Duration(si.IdleTimeout),
			AbsoluteTimeout: time.Duration(si.AbsoluteTimeout)}
	}
	return s
}
