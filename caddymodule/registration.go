package caddymodule

import (
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddytls"

	"github.com/tokeninjector/caddy-token-injector/internal/callerauth"
	"github.com/tokeninjector/caddy-token-injector/internal/cors"
	"github.com/tokeninjector/caddy-token-injector/internal/entra"
	"github.com/tokeninjector/caddy-token-injector/internal/identity"
	"github.com/tokeninjector/caddy-token-injector/internal/session"
	"github.com/tokeninjector/caddy-token-injector/internal/signin"
)

// Defaults of the registration's tuning.
const (
	defaultCacheMaxEntries = 100_000
	defaultTimeout         = 10 * time.Second
	defaultRefreshBefore   = 5 * time.Minute
	defaultExpiryMargin    = time.Minute
	defaultClockSkew       = time.Minute
)

// Registration is the Entra app registration the proxy acts as, and the cache of tokens it holds for it. Routes
// that share a Registration (through the global token_injector option) share one cache.
//
// Every value, durations and numbers included, may be or contain a placeholder such as {env.CLIENT_SECRET}. It
// stays a placeholder in the JSON config and is resolved when the config is provisioned; an error then names the
// field and the value it resolved to. A placeholder that resolves to nothing leaves the field's default. (The
// Caddyfile's {$VAR} is different: it is substituted when the Caddyfile is adapted.) Values without placeholders
// are checked when a Caddyfile is adapted, so their errors carry the file and line.
type Registration struct {
	// AuthorityHost is the sign-in host of the cloud: a sovereign cloud's, or the local emulator's, as an https
	// URL without a path. Default: https://login.microsoftonline.com.
	AuthorityHost string `json:"authority_host,omitempty"`
	// Tenant is the directory's tenant ID (a GUID) or a verified domain; or organizations (or common) for a
	// multi-tenant app, whose callers' tenants AllowedTenants names. consumers is refused. Required.
	Tenant string `json:"tenant,omitempty"`
	// AllowedTenants are the tenant IDs whose callers a multi-tenant registration (tenant organizations or common)
	// takes; "*" takes any tenant, explicitly. Each caller's downstream tokens come from its own tenant. Required
	// with a multi-tenant tenant, refused with one directory.
	AllowedTenants []string `json:"allowed_tenants,omitempty"`
	// ClientCapabilities are declared on every token request, merged into its claims as xms_cc: cp1 says the
	// proxy handles CAE claims challenges, so Entra issues long-lived CAE tokens (up to 28h), which resources
	// revoke with a challenge. Every upstream of the registration must then be reached through the proxy.
	// Default: none.
	ClientCapabilities []string `json:"client_capabilities,omitempty"`
	// ClientID is the application (client) ID of the add-in's web API registration. Required.
	ClientID string `json:"client_id,omitempty"`
	// ClientSecret is a client secret of that registration, typically {env.CLIENT_SECRET}. Rotating it (a reload
	// with a new value) keeps every cached token. Exactly one credential is required: this, ClientCertificate,
	// ClientAssertionFile or ManagedIdentity.
	ClientSecret string `json:"client_secret,omitempty"`
	// ClientCertificate is a certificate of the registration and its key: MSAL signs a client assertion with it.
	// The files are read again on each reload. Default: none.
	ClientCertificate *ClientCertificate `json:"client_certificate,omitempty"`
	// ClientAssertionFile is the path of a federated token file (workload identity federation), read again
	// whenever it changes, as kubelet rotates it. The Caddyfile's client_assertion_file without a path means
	// {env.AZURE_FEDERATED_TOKEN_FILE}. Default: none.
	ClientAssertionFile string `json:"client_assertion_file,omitempty"`
	// ManagedIdentity uses the host's managed identity as a federated credential of the registration. Default: none.
	ManagedIdentity *ManagedIdentity `json:"managed_identity,omitempty"`
	// Audiences are the aud values accepted in callers' tokens besides ClientID, typically the App ID URI
	// (api://<host>/<client id>). Default: none.
	Audiences []string `json:"audiences,omitempty"`
	// TrustPoolRaw is the set of CAs trusted for calls to AuthorityHost, as a tls.ca_pool.source module.
	// Default: the system's roots.
	TrustPoolRaw json.RawMessage `json:"tls_trust_pool,omitempty" caddy:"namespace=tls.ca_pool.source inline_key=provider"`
	// CacheMaxEntries bounds the token cache: at most this many (user, scope set) tokens are held, the least
	// recently used evicted first. A reload that changes it resizes the cache in place. Default: 100000.
	CacheMaxEntries Number `json:"cache_max_entries,omitempty"`
	// CallerCacheMaxBytes bounds the memory of the proven-token cache: callers' tokens whose signature was
	// checked, remembered so that their next requests cost a tag and a lookup instead of an RSA verification.
	// A proven token counts its identity (about 1 KB), whatever its size: the token itself is not kept. A
	// reload that changes it resizes the cache in place. Default: 64MiB (about 65,000 active callers).
	CallerCacheMaxBytes Size `json:"caller_cache_max_bytes,omitempty"`
	// Timeout bounds every call to Entra, as a duration ("10s") or nanoseconds. Default: 10s.
	Timeout Duration `json:"timeout,omitempty"`
	// RefreshBefore is how long before a downstream token expires that an active user's token is renewed in the
	// background. Default: 5m.
	RefreshBefore Duration `json:"refresh_before,omitempty"`
	// ExpiryMargin is how long before a downstream token expires that the proxy stops forwarding it. A reload that
	// changes it applies to tokens cached after. Default: 1m.
	ExpiryMargin Duration `json:"expiry_margin,omitempty"`
	// ClockSkew is the tolerance applied to the exp and nbf of callers' tokens. Default: 1m.
	ClockSkew Duration `json:"clock_skew,omitempty"`
	// AllowedOrigins are the origins (https://addin.example.com) whose scripts may call the routes cross-origin:
	// their preflights are answered and their responses, 401 bodies included, are readable. They are also the
	// targets of the sign-in popup's message. Default: none.
	AllowedOrigins []string `json:"allowed_origins,omitempty"`
	// CallerScopes are delegated scopes of this API of which a caller's token must carry one (its scp), such as
	// access_as_user; a token with none of them gets 403 insufficient_scope. Default: none required, since the
	// audience already confines tokens to this API; set it when the API exposes scopes this route must not take.
	CallerScopes []string `json:"caller_scopes,omitempty"`
	// CallerApps are the client applications (the azp or appid of callers' tokens) whose tokens are taken, as API
	// Management's client application ids; others get 403 access_denied. Default: any application.
	CallerApps []string `json:"caller_apps,omitempty"`
	// SignIn enables proxy-managed sign-in for callers without a bearer token. Default: off; such callers get 401.
	SignIn *SignIn `json:"sign_in,omitempty"`
}

// inlineSecrets names the secret fields written as values rather than placeholders ({env.X}, {file./path}): they
// end up in the JSON config (and {$X} ones too, since they are replaced when the Caddyfile is adapted).
func (r Registration) inlineSecrets() []string {
	var fields []string
	if r.ClientSecret != "" && !strings.Contains(r.ClientSecret, "{") {
		fields = append(fields, "client_secret")
	}
	if r.SignIn != nil && slices.ContainsFunc(r.SignIn.CookieSecrets, func(s string) bool { return !strings.Contains(s, "{") }) {
		fields = append(fields, "sign_in: cookie_secret")
	}
	return fields
}

// isZero reports whether r sets nothing.
func (r Registration) isZero() bool { return reflect.DeepEqual(r, Registration{}) }

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
	if o.ClientID != "" && o.ClientID != r.ClientID {
		// Another app: the global option's audiences are its app's, and must not let that app's tokens in.
		r.Audiences = nil
	}
	pick(&r.AuthorityHost, o.AuthorityHost)
	pick(&r.Tenant, o.Tenant)
	pick(&r.ClientID, o.ClientID)
	overlayCredential(&r, o)
	if len(o.Audiences) > 0 {
		r.Audiences = o.Audiences
	}
	if len(o.TrustPoolRaw) > 0 {
		r.TrustPoolRaw = o.TrustPoolRaw
	}
	if len(o.AllowedOrigins) > 0 {
		r.AllowedOrigins = o.AllowedOrigins
	}
	if len(o.CallerScopes) > 0 {
		r.CallerScopes = o.CallerScopes
	}
	if len(o.CallerApps) > 0 {
		r.CallerApps = o.CallerApps
	}
	if len(o.AllowedTenants) > 0 {
		r.AllowedTenants = o.AllowedTenants
	}
	if len(o.ClientCapabilities) > 0 {
		r.ClientCapabilities = o.ClientCapabilities
	}
	if o.SignIn != nil {
		r.SignIn = o.SignIn
	}
	if o.CacheMaxEntries != "" {
		r.CacheMaxEntries = o.CacheMaxEntries
	}
	if o.CallerCacheMaxBytes != "" {
		r.CallerCacheMaxBytes = o.CallerCacheMaxBytes
	}
	for _, d := range []struct{ dst, v *Duration }{{&r.Timeout, &o.Timeout}, {&r.RefreshBefore, &o.RefreshBefore},
		{&r.ExpiryMargin, &o.ExpiryMargin}, {&r.ClockSkew, &o.ClockSkew}} {
		if *d.v != "" {
			*d.dst = *d.v
		}
	}
	return r
}

// resolve replaces placeholders, applies defaults and checks every value: the settings the shared state is
// built and updated from. Errors name the field at fault.
func (r Registration) resolve() (settings, error) {
	repl := caddy.NewReplacer()
	s := settings{
		AuthorityHost:  strings.TrimSuffix(repl.ReplaceKnown(r.AuthorityHost, ""), "/"),
		Tenant:         repl.ReplaceKnown(r.Tenant, ""),
		ClientID:       repl.ReplaceKnown(r.ClientID, ""),
		Audiences:      replaceAll(r.Audiences),
		AllowedOrigins: replaceAll(r.AllowedOrigins),
		CallerScopes:   replaceAll(r.CallerScopes),
		CallerApps:     replaceAll(r.CallerApps),
		InlineSecrets:  r.inlineSecrets(),

		AllowedTenants:     replaceAll(r.AllowedTenants),
		ClientCapabilities: replaceAll(r.ClientCapabilities),
	}
	if s.AuthorityHost == "" {
		s.AuthorityHost = entra.DefaultAuthorityHost
	}
	var err error
	if s.Credential, err = r.resolveCredential(repl); err != nil {
		return settings{}, err
	}
	if s.CacheMaxEntries, err = r.CacheMaxEntries.resolve(repl, "cache_max_entries", defaultCacheMaxEntries); err != nil {
		return settings{}, err
	}
	if s.CallerCacheMaxBytes, err = r.CallerCacheMaxBytes.resolve(repl, "caller_cache_max_bytes",
		callerauth.DefaultMaxCachedBytes); err != nil {
		return settings{}, err
	}
	for _, d := range []struct {
		field string
		raw   Duration
		def   time.Duration
		dst   *time.Duration
	}{
		{"timeout", r.Timeout, defaultTimeout, &s.Timeout},
		{"refresh_before", r.RefreshBefore, defaultRefreshBefore, &s.RefreshBefore},
		{"expiry_margin", r.ExpiryMargin, defaultExpiryMargin, &s.ExpiryMargin},
		{"clock_skew", r.ClockSkew, defaultClockSkew, &s.ClockSkew},
	} {
		if *d.dst, err = d.raw.resolve(repl, d.field, d.def); err != nil {
			return settings{}, err
		}
	}
	if err := s.check(); err != nil {
		return settings{}, err
	}
	if r.SignIn != nil {
		if s.SignIn, err = r.SignIn.resolve(repl); err != nil {
			return settings{}, err
		}
	}
	return s, nil
}

// check names the field at fault in resolved settings.
func (s settings) check() error {
	if err := checkAuthorityHost(s.AuthorityHost); err != nil {
		return err
	}
	switch {
	case s.Tenant == "":
		return errors.New("tenant: required (the directory's tenant ID or domain)")
	case s.ClientID == "":
		return errors.New("client_id: required (the application ID of the app registration)")
	}
	if err := checkTenant(s.Tenant); err != nil {
		return err
	}
	if err := checkAllowedTenants(s.Tenant, s.AllowedTenants); err != nil {
		return err
	}
	for _, c := range s.ClientCapabilities {
		if err := checkCapability(c); err != nil {
			return err
		}
	}
	_, err := cors.New(s.AllowedOrigins)
	return err
}

// checkAllowedTenants requires allowed_tenants with a multi-tenant tenant, and only then: tenant IDs, or *.
func checkAllowedTenants(tenant string, allowed []string) error {
	multi := entra.IsMultiTenant(tenant)
	switch {
	case multi && len(allowed) == 0:
		return fmt.Errorf("allowed_tenants: required with tenant %s: name the tenant IDs whose users may call, or * for any tenant", tenant)
	case !multi && len(allowed) > 0:
		return fmt.Errorf("allowed_tenants: only with tenant organizations or common; tenant %s serves its own users", tenant)
	}
	for _, t := range allowed {
		if err := checkAllowedTenant(t); err != nil {
			return err
		}
	}
	return nil
}

// checkAllowedTenant checks one allowed_tenants value.
func checkAllowedTenant(t string) error {
	if t != "*" && !identity.IsGUID(t) {
		return fmt.Errorf("allowed_tenants: %q is not a tenant ID (a GUID) or *", t)
	}
	return nil
}

// checkCapability checks one client_capabilities value: a word, such as cp1.
func checkCapability(c string) error {
	for _, r := range c {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return fmt.Errorf("client_capabilities: %q is not a capability (such as cp1)", c)
		}
	}
	if c == "" {
		return errors.New("client_capabilities: empty capability")
	}
	return nil
}

// resolve returns the sign_in block's settings. Errors name the field. The cookie secrets are checked where they
// are decoded (provisionSignIn).
func (si *SignIn) resolve(repl *caddy.Replacer) (*signInSettings, error) {
	s := &signInSettings{CookieSecrets: replaceAll(si.CookieSecrets), Path: repl.ReplaceKnown(si.Path, ""),
		SameSite: repl.ReplaceKnown(si.SameSite, ""), Partitioned: si.Partitioned, EndSession: si.EndSession}
	var err error
	if s.IdleTimeout, err = si.IdleTimeout.resolve(repl, "sign_in: idle_timeout", session.DefaultIdleTimeout); err != nil {
		return nil, err
	}
	s.AbsoluteTimeout, err = si.AbsoluteTimeout.resolve(repl, "sign_in: absolute_timeout", session.DefaultAbsoluteTimeout)
	if err != nil {
		return nil, err
	}
	if s.LoginTimeout, err = si.LoginTimeout.resolve(repl, "sign_in: login_timeout", 0); err != nil {
		return nil, err
	}
	if err := checkSignInPath(s.Path); err != nil {
		return nil, err
	}
	if _, err := parseSameSite(s.SameSite); err != nil {
		return nil, err
	}
	return s, nil
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

// checkAuthorityHost checks an authority_host, naming the field; the rule is the Entra adapter's.
func checkAuthorityHost(h string) error {
	if _, err := entra.CheckAuthorityHost(h); err != nil {
		return fmt.Errorf("authority_host: %w", err)
	}
	return nil
}

// checkTenant checks a tenant, naming the field; the rule is the Entra adapter's.
func checkTenant(t string) error {
	if err := entra.CheckTenant(t); err != nil {
		return fmt.Errorf("tenant: %w", err)
	}
	return nil
}

// checkSignInPath checks sign_in's path, naming the field; the rule is the sign-in endpoints'.
func checkSignInPath(p string) error {
	if err := signin.CheckPath(p); err != nil {
		return fmt.Errorf("sign_in: path: %w", err)
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
