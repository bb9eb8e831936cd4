package caddymodule

import (
	"net/netip"
	"strconv"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("token_injector_sidecar", parseSidecar)
	// A terminal handler, like respond.
	httpcaddyfile.RegisterDirectiveOrder("token_injector_sidecar", httpcaddyfile.Before, "respond")
}

func parseSidecar(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	s := new(Sidecar)
	err := s.UnmarshalCaddyfile(h.Dispenser)
	return s, err
}

// UnmarshalCaddyfile sets up the sidecar from Caddyfile tokens. Syntax:
//
//	token_injector_sidecar [<matcher>] {
//		api <name> [<scope>...] {
//			scopes   <scope>...
//			base_url <url>            # for transparent mode
//			app_token                 # the app's own token for this API
//		}
//		api_list <spec>               # e.g. {env.TOKEN_INJECTOR_APIS}; see Sidecar.APIList
//		allow_overrides authorization_header <true|false>                 # default true
//		allow_overrides authorization_header_unauthenticated <true|false> # default false
//		allowed_networks <cidr>...    # callers served besides loopback
//		transparent                   # proxy /<api>/... with the token injected
//
//		# and the registration subdirectives of token_injector (tenant, client_id, ...)
//	}
func (s *Sidecar) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		var err error
		switch d.Val() {
		case "api":
			err = s.unmarshalAPI(d)
		case "api_list":
			err = oneArg(d, &s.APIList)
		case "allow_overrides":
			err = s.unmarshalOverride(d)
		case "allowed_networks":
			if err = listArg(d, &s.AllowedNetworks); err == nil {
				err = checkLiterals(d, s.AllowedNetworks, func(v string) error { _, err := netip.ParsePrefix(v); return err })
			}
		case "transparent":
			if d.NextArg() {
				return d.ArgErr()
			}
			s.Transparent = true
		default:
			if s.Registration == nil {
				s.Registration = new(Registration)
			}
			err = s.Registration.unmarshalSubdirective(d)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (s *Sidecar) unmarshalAPI(d *caddyfile.Dispenser) error {
	if !d.NextArg() {
		return d.ArgErr()
	}
	a := SidecarAPI{Name: d.Val()}
	if err := scopesArg(d, d.RemainingArgs(), &a.Scopes); err != nil {
		return err
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		var err error
		switch d.Val() {
		case "scopes":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			err = scopesArg(d, args, &a.Scopes)
		case "base_url":
			err = oneArg(d, &a.BaseURL)
		case "app_token":
			if d.NextArg() {
				return d.ArgErr()
			}
			a.AppToken = true
		default:
			return d.Errf("api %s: unknown subdirective %q", a.Name, d.Val())
		}
		if err != nil {
			return err
		}
	}
	s.APIs = append(s.APIs, a)
	return nil
}

func (s *Sidecar) unmarshalOverride(d *caddyfile.Dispenser) error {
	var name, value string
	if !d.Args(&name, &value) || d.NextArg() {
		return d.ArgErr()
	}
	b, err := strconv.ParseBool(value)
	if err != nil {
		return d.Errf("allow_overrides %s: %q is not true or false", name, value)
	}
	if s.AllowOverrides == nil {
		s.AllowOverrides = new(SidecarOverrides)
	}
	switch name {
	case "authorization_header":
		s.AllowOverrides.AuthorizationHeader = &b
	case "authorization_header_unauthenticated":
		s.AllowOverrides.AuthorizationHeaderUnauthenticated = &b
	default:
		return d.Errf("allow_overrides: unknown endpoint %q (authorization_header, authorization_header_unauthenticated)", name)
	}
	return nil
}
