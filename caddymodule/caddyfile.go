package caddymodule

import (
	"strings"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddytls"
	"github.com/tokeninjector/caddy-token-injector/internal/cors"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("token_injector", parseHandler)
	// Before request_header, handle and reverse_proxy, so no `order` option or route block is needed.
	httpcaddyfile.RegisterDirectiveOrder("token_injector", httpcaddyfile.After, "forward_auth")
	httpcaddyfile.RegisterGlobalOption("token_injector", parseGlobalOption)
}

func parseHandler(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	m := new(Handler)
	err := m.UnmarshalCaddyfile(h.Dispenser)
	return m, err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	token_injector [<matcher>] [<scope>...] {
//		scopes <scope>...
//
//		# An inline registration, for a single route. Without one, the global
//		# token_injector option's registration (same subdirectives) is used.
//		authority_host    <url>          # default https://login.microsoftonline.com
//		tenant            <tenant id or domain>  # or organizations, common: a multi-tenant app (allowed_tenants)
//		client_id         <application id>
//		# exactly one credential:
//		client_secret     <secret>       # e.g. {env.CLIENT_SECRET}
//		client_certificate <cert.pem> <key.pem> [{ send_x5c }] # PEM files; RSA key, PKCS#8 or PKCS#1
//		client_assertion_file [<path>]   # federated token file; default {env.AZURE_FEDERATED_TOKEN_FILE}
//		managed_identity  [<client id>]  # the host's managed identity as a federated credential
//		audience          <aud>...       # accepted aud values besides client_id
//		tls_trust_pool    <module> ...   # CAs trusted for calls to authority_host
//		cache_max_entries <n>            # default 100000
//		caller_cache_max_bytes <size>    # proven callers remembered, e.g. 128MiB; default 64MiB (65k callers)
//		timeout           <duration>     # default 10s, each call to Entra
//		refresh_before    <duration>     # default 5m
//		expiry_margin     <duration>     # default 1m
//		clock_skew        <duration>     # default 1m
//		allowed_origins   <origin>...    # cross-origin callers (CORS) and sign-in popup message targets
//		caller_scopes     <scope>...     # callers' tokens must carry one of these scopes (default: any)
//		caller_apps       <client id>... # callers' tokens must come from one of these apps (default: any)
//		allowed_tenants   <tenant id>... # with tenant organizations/common: the callers' tenants (* = any)
//		client_capabilities cp1          # declare CAE readiness (xms_cc) on every token request
//
//		# The route's own:
//		app_only                         # forward the app's own token (client credentials), scopes <resource>/.default
//		allow_anonymous                  # app_only without a caller token (a loopback sidecar)
//		retry_body_limit  <bytes>        # default 1048576: bodies kept to retry after a CAE challenge
//		sign_in {                        # proxy-managed sign-in and sessions; see unmarshalSignIn
//			cookie_secret <base64 key> [<older key>...]
//			...
//		}
//	}
//
// A scope names its resource: https://graph.microsoft.com/User.Read, not User.Read; api://<app>/.default;
// <application id>/<permission>. The OpenID scopes openid, profile, offline_access and email stand alone.
//
// Placeholders such as {env.X} work in every value, durations and numbers included; they stay placeholders in the
// JSON and are resolved when the config is provisioned. Values without placeholders are checked now, so errors
// carry the Caddyfile's line. ({$X} is substituted before that, when the Caddyfile is read.)
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if err := scopesArg(d, d.RemainingArgs(), &h.Scopes); err != nil {
		return err
	}
	for d.NextBlock(0) {
		if ok, err := h.unmarshalRouteSubdirective(d); ok || err != nil {
			if err != nil {
				return err
			}
			continue
		}
		if d.Val() == "scopes" {
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			if err := scopesArg(d, args, &h.Scopes); err != nil {
				return err
			}
			continue
		}
		if h.Registration == nil {
			h.Registration = new(Registration)
		}
		if err := h.Registration.unmarshalSubdirective(d); err != nil {
			return err
		}
	}
	return nil
}

// parseGlobalOption reads the global token_injector option, which takes the registration subdirectives of the
// handler's syntax (see Handler.UnmarshalCaddyfile) and is shared by every handler without an inline one:
//
//	{
//		token_injector {
//			tenant        <tenant id>
//			client_id     <application id>
//			client_secret {env.CLIENT_SECRET}
//			...
//		}
//	}
func parseGlobalOption(d *caddyfile.Dispenser, _ any) (any, error) {
	app := new(App)
	d.Next() // option name
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	for d.NextBlock(0) {
		if d.Val() == "redis" { // global only: every route shares the tier
			r, err := unmarshalRedis(d)
			if err != nil {
				return nil, err
			}
			app.Redis = r
			continue
		}
		if err := app.Registration.unmarshalSubdirective(d); err != nil {
			return nil, err
		}
	}
	return httpcaddyfile.App{Name: appName, Value: caddyconfig.JSON(app, nil)}, nil
}

// unmarshalSubdirective reads one registration subdirective at the dispenser's cursor.
func (r *Registration) unmarshalSubdirective(d *caddyfile.Dispenser) error {
	switch name := d.Val(); name {
	case "authority_host":
		return checkedArg(d, &r.AuthorityHost, func(v string) error { return checkAuthorityHost(strings.TrimSuffix(v, "/")) })
	case "tenant":
		return checkedArg(d, &r.Tenant, checkTenant)
	case "client_id":
		return oneArg(d, &r.ClientID)
	case "client_secret":
		return oneArg(d, &r.ClientSecret)
	case "client_certificate":
		return r.unmarshalClientCertificate(d)
	case "client_assertion_file":
		return r.unmarshalAssertionFile(d)
	case "managed_identity":
		return r.unmarshalManagedIdentity(d)
	case "audience", "audiences":
		return listArg(d, &r.Audiences)
	case "tls_trust_pool":
		return r.unmarshalTrustPool(d)
	case "allowed_origins":
		if err := listArg(d, &r.AllowedOrigins); err != nil {
			return err
		}
		return checkLiterals(d, r.AllowedOrigins, func(o string) error { _, err := cors.New([]string{o}); return err })
	case "caller_scopes":
		return listArg(d, &r.CallerScopes)
	case "caller_apps":
		return listArg(d, &r.CallerApps)
	case "allowed_tenants":
		if err := listArg(d, &r.AllowedTenants); err != nil {
			return err
		}
		return checkLiterals(d, r.AllowedTenants, checkAllowedTenant)
	case "client_capabilities":
		if err := listArg(d, &r.ClientCapabilities); err != nil {
			return err
		}
		return checkLiterals(d, r.ClientCapabilities, checkCapability)
	case "sign_in":
		s, err := unmarshalSignIn(d)
		if err != nil {
			return err
		}
		r.SignIn = s
		return nil
	case "redis":
		return d.Err("redis: set it in the global token_injector option; every route shares it")
	case "cache_max_entries":
		var v string
		err := checkedArg(d, &v, func(v string) error { _, err := parseNumber(name, v, v); return err })
		r.CacheMaxEntries = Number(v)
		return err
	case "caller_cache_max_bytes":
		var v string
		err := checkedArg(d, &v, func(v string) error { _, err := parseSize(name, v, v); return err })
		r.CallerCacheMaxBytes = Size(v)
		return err
	case "timeout":
		return durationArg(d, &r.Timeout)
	case "refresh_before":
		return durationArg(d, &r.RefreshBefore)
	case "expiry_margin":
		return durationArg(d, &r.ExpiryMargin)
	case "clock_skew":
		return durationArg(d, &r.ClockSkew)
	default:
		return d.Errf("token_injector: unknown subdirective %q", name)
	}
}

// unmarshalTrustPool reads tls_trust_pool <module> ...
func (r *Registration) unmarshalTrustPool(d *caddyfile.Dispenser) error {
	if !d.NextArg() {
		return d.ArgErr()
	}
	if r.TrustPoolRaw != nil {
		return d.Err("tls_trust_pool: given twice")
	}
	stem := d.Val()
	unm, err := caddyfile.UnmarshalModule(d, "tls.ca_pool.source."+stem)
	if err != nil {
		return err
	}
	if _, ok := unm.(caddytls.CA); !ok {
		return d.Errf("tls_trust_pool: module %s is not a CA pool", stem)
	}
	r.TrustPoolRaw = caddyconfig.JSONModuleObject(unm, "provider", stem, nil)
	return nil
}

// scopesArg appends scopes to dst, checking those without placeholders now.
func scopesArg(d *caddyfile.Dispenser, scopes []string, dst *[]string) error {
	*dst = append(*dst, scopes...)
	return checkLiterals(d, scopes, checkScope)
}

// listArg appends one or more arguments to dst.
func listArg(d *caddyfile.Dispenser, dst *[]string) error {
	args := d.RemainingArgs()
	if len(args) == 0 {
		return d.ArgErr()
	}
	*dst = append(*dst, args...)
	return nil
}

// oneArg reads exactly one argument into dst.
func oneArg(d *caddyfile.Dispenser, dst *string) error {
	if !d.NextArg() {
		return d.ArgErr()
	}
	*dst = d.Val()
	if d.NextArg() {
		return d.ArgErr()
	}
	return nil
}

// durationArg reads one duration; one without placeholders must be positive now.
func durationArg(d *caddyfile.Dispenser, dst *Duration) error {
	name := d.Val()
	var v string
	err := checkedArg(d, &v, func(v string) error { _, err := parseDuration(name, v, v); return err })
	*dst = Duration(v)
	return err
}

// checkedArg reads exactly one argument into dst and, unless it holds a placeholder (checked when the config is
// provisioned), checks it now with check, adding the file and line to check's error.
func checkedArg(d *caddyfile.Dispenser, dst *string, check func(string) error) error {
	if err := oneArg(d, dst); err != nil {
		return err
	}
	return checkLiterals(d, []string{*dst}, check)
}

// checkLiterals checks each value without placeholders, adding the file and line of the dispenser's token.
func checkLiterals(d *caddyfile.Dispenser, values []string, check func(string) error) error {
	for _, v := range values {
		if hasPlaceholder(v) {
			continue
		}
		if err := check(v); err != nil {
			return d.WrapErr(err)
		}
	}
	return nil
}

// checkSameSite checks sign_in's same_site.
func checkSameSite(v string) error {
	_, err := parseSameSite(v)
	return err
}

// Interface guards
var _ caddyfile.Unmarshaler = (*Handler)(nil)

// unmarshalRouteSubdirective reads a subdirective of the route itself (not of its registration), reporting
// whether the cursor's subdirective is one.
func (h *Handler) unmarshalRouteSubdirective(d *caddyfile.Dispenser) (bool, error) {
	switch name := d.Val(); name {
	case "app_only", "allow_anonymous":
		if d.NextArg() {
			return true, d.ArgErr()
		}
		if name == "app_only" {
			h.AppOnly = true
		} else {
			h.AllowAnonymous = true
		}
		return true, nil
	case "retry_body_limit":
		var v string
		err := checkedArg(d, &v, func(v string) error { _, err := parseNumber(name, v, v); return err })
		h.RetryBodyLimit = Number(v)
		return true, err
	}
	return false, nil
}
