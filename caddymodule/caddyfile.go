package caddymodule

import (
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddytls"
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
//		tenant            <tenant id or domain>
//		client_id         <application id>
//		client_secret     <secret>       # e.g. {env.CLIENT_SECRET}
//		audience          <aud>...       # accepted aud values besides client_id
//		tls_trust_pool    <module> ...   # CAs trusted for calls to authority_host
//		cache_max_entries <n>            # default 100000
//		timeout           <duration>     # default 10s, each call to Entra
//		refresh_before    <duration>     # default 5m
//		expiry_margin     <duration>     # default 1m
//		clock_skew        <duration>     # default 1m
//		allowed_origins   <origin>...    # cross-origin callers (CORS) and sign-in popup message targets
//		sign_in {                        # proxy-managed sign-in and sessions; see unmarshalSignIn
//			cookie_secret <base64 key> [<older key>...]
//			...
//		}
//	}
//
// Placeholders such as {env.X} work in every value.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	h.Scopes = append(h.Scopes, d.RemainingArgs()...)
	for d.NextBlock(0) {
		if d.Val() == "scopes" {
			if err := listArg(d, &h.Scopes); err != nil {
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
		if err := app.Registration.unmarshalSubdirective(d); err != nil {
			return nil, err
		}
	}
	return httpcaddyfile.App{Name: appName, Value: caddyconfig.JSON(app, nil)}, nil
}

// unmarshalSubdirective reads one registration subdirective at the dispenser's cursor.
func (r *Registration) unmarshalSubdirective(d *caddyfile.Dispenser) error {
	name := d.Val()
	stringArg := func(dst *string) error { return oneArg(d, dst) }
	durationArg := func(dst *caddy.Duration) error { return durationArg(d, dst) }
	switch name {
	case "authority_host":
		return stringArg(&r.AuthorityHost)
	case "tenant":
		return stringArg(&r.Tenant)
	case "client_id":
		return stringArg(&r.ClientID)
	case "client_secret":
		return stringArg(&r.ClientSecret)
	case "audience", "audiences":
		return listArg(d, &r.Audiences)
	case "tls_trust_pool":
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
	case "allowed_origins":
		return listArg(d, &r.AllowedOrigins)
	case "sign_in":
		s, err := unmarshalSignIn(d)
		if err != nil {
			return err
		}
		r.SignIn = s
		return nil
	case "cache_max_entries":
		var s string
		if err := stringArg(&s); err != nil {
			return err
		}
		n, err := strconv.Atoi(caddy.NewReplacer().ReplaceKnown(s, ""))
		if err != nil || n <= 0 {
			return d.Errf("cache_max_entries: %q is not a positive number", s)
		}
		r.CacheMaxEntries = n
		return nil
	case "timeout":
		return durationArg(&r.Timeout)
	case "refresh_before":
		return durationArg(&r.RefreshBefore)
	case "expiry_margin":
		return durationArg(&r.ExpiryMargin)
	case "clock_skew":
		return durationArg(&r.ClockSkew)
	}
	return d.Errf("token_injector: unknown subdirective %q", name)
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

// durationArg reads one positive duration; a placeholder such as {env.TIMEOUT} is resolved now.
func durationArg(d *caddyfile.Dispenser, dst *caddy.Duration) error {
	name := d.Val()
	var s string
	if err := oneArg(d, &s); err != nil {
		return err
	}
	v, err := caddy.ParseDuration(caddy.NewReplacer().ReplaceKnown(s, ""))
	if err != nil || v <= 0 {
		return d.Errf("%s: %q is not a positive duration", name, s)
	}
	*dst = caddy.Duration(v)
	return nil
}

// Interface guards
var _ caddyfile.Unmarshaler = (*Handler)(nil)
