// Package demo registers the local development parts of the demo: the Entra emulator and a stub downstream
// API that echoes who called it. cmd/caddy links them so that `caddy run` works with no tenant and no internet; a
// production build made with xcaddy --with .../caddymodule does not include them.
package demo

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"sync/atomic"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/tokeninjector/caddy-token-injector/caddymodule"
	"github.com/tokeninjector/caddy-token-injector/internal/dev/entraemu"
)

func init() {
	caddy.RegisterModule(Emulator{})
	caddy.RegisterModule(EchoAPI{})
	httpcaddyfile.RegisterHandlerDirective("entra_emulator", parseEmulator)
	httpcaddyfile.RegisterDirectiveOrder("entra_emulator", httpcaddyfile.Before, "respond")
	httpcaddyfile.RegisterHandlerDirective("echo_api", parseEchoAPI)
	httpcaddyfile.RegisterDirectiveOrder("echo_api", httpcaddyfile.Before, "respond")
}

// emulators holds the emulators of the process, one per directory (the demo tenant plus the Caddyfile's apps and
// users; directory.go), so their keys, refresh tokens and faults survive config reloads.
var emulators = caddy.NewUsagePool()

const emulatorKey = "entra_emulator"

type pooledEmulator struct{ *entraemu.Emulator }

func (pooledEmulator) Destruct() error { return nil }

func loadEmulator(key string, apps []AppConfig, users []UserConfig) (*entraemu.Emulator, error) {
	v, _, err := emulators.LoadOrNew(key, func() (caddy.Destructor, error) {
		cfg, err := tenantConfig(apps, users)
		if err != nil {
			return nil, err
		}
		e, err := entraemu.New(cfg)
		return pooledEmulator{e}, err
	})
	if err != nil {
		return nil, err
	}
	return v.(pooledEmulator).Emulator, nil
}

// lastProvisioned is the emulator of the entra_emulator handler provisioned last: the stub API reads its faults
// (insufficient_claims), so the control API's faults reach it whichever directory the config declares.
var lastProvisioned atomic.Pointer[entraemu.Emulator]

// Emulator serves the local Entra ID emulator (the demo tenant of entraemu.DefaultConfig) at the site it is in.
// It mints tokens, so it answers only requests that arrived on a loopback address unless AllowNonLoopback is set.
type Emulator struct {
	// AllowNonLoopback lets the emulator answer requests received on non-loopback addresses. Default: false.
	AllowNonLoopback bool `json:"allow_non_loopback,omitempty"`
	// BaseURL is the emulator's issuer base (https://host:port), so that every site serving it, including a
	// plain-http one that exposes /_emulator/ for curl, mints tokens for the same issuer. Default: each request's
	// own scheme and host.
	BaseURL string `json:"base_url,omitempty"`
	// ReadyURL, when set, is polled once the config is provisioned; when it answers, the emulator prints
	// "demo ready: open <ReadyURL>" (once per process). Default: no announcement.
	ReadyURL string `json:"ready_url,omitempty"`
	// Apps are app registrations added to the demo tenant (replacing one of the same client id). Every
	// entra_emulator handler of a config must declare the same apps and users (a Caddyfile snippet), or they run
	// different tenants. Default: none, the demo tenant of entraemu.DefaultConfig.
	Apps []AppConfig `json:"apps,omitempty"`
	// Users are users added to the demo tenant (replacing one of the same key). Default: none.
	Users []UserConfig `json:"users,omitempty"`

	emu *entraemu.Emulator
	key string
}

// CaddyModule returns the Caddy module information.
func (Emulator) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.handlers.entra_emulator", New: func() caddy.Module { return new(Emulator) }}
}

// Provision attaches to the process's emulator. With a BaseURL it first takes the demo's lock on that port, so
// that a second demo process fails here instead of sharing the port (see lock.go).
func (m *Emulator) Provision(ctx caddy.Context) (err error) {
	if m.BaseURL != "" {
		u, err := url.Parse(m.BaseURL)
		if err != nil || u.Port() == "" {
			return fmt.Errorf("entra_emulator: base_url %q: want https://host:port", m.BaseURL)
		}
		if err := lockPort(lockDir, u.Port()); err != nil {
			return err
		}
	}
	m.key = directoryKey(m.Apps, m.Users)
	if m.emu, err = loadEmulator(m.key, m.Apps, m.Users); err != nil {
		return err
	}
	lastProvisioned.Store(m.emu)
	if m.BaseURL != "" {
		m.emu.SetBaseURL(m.BaseURL)
		// Only a registration whose authority this emulator is may sign its sessions with the demo's key.
		if err := caddymodule.DeclareEmulator(ctx, m.BaseURL); err != nil {
			return err
		}
	}
	if m.ReadyURL != "" {
		announceWhenReady(m.ReadyURL, ctx.Logger())
	}
	return nil
}

// lockDir holds the demo's per-port lock files; tests point it elsewhere.
var lockDir = os.TempDir()

// Cleanup releases this config's hold on the emulator.
func (m *Emulator) Cleanup() error {
	_, err := emulators.Delete(m.key)
	return err
}

func (m *Emulator) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	if local, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); !m.AllowNonLoopback && (!ok || !entraemu.IsLoopbackAddr(local)) {
		return caddyhttp.Error(http.StatusForbidden, errNonLoopback)
	}
	m.emu.ServeHTTP(w, r)
	return nil
}

// UnmarshalCaddyfile sets up the emulator. Syntax:
//
//	entra_emulator {
//		base_url <https://host:port>
//		ready_url <http://host:port/>
//		allow_non_loopback
//		app <client id> {
//			name                 <display name>
//			secret               <secret>            # none: a public client
//			redirect_uri         spa|web <uri>...    # loopback URIs match whatever their port
//			identifier_uri       <App ID URI>...
//			scope                <exposed scope>...  # e.g. access_as_user
//			api_permission       <resource> <scope>...
//			pre_consented                            # admin consent for every user
//			known_client         <client id>...      # knownClientApplications: combined consent
//			access_token_version 1|2
//		}
//		user <key> {
//			name      <display name>
//			upn       <user principal name>
//			object_id <GUID>
//		}
//	}
func (m *Emulator) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	for d.NextBlock(0) {
		switch d.Val() {
		case "app":
			a, err := unmarshalApp(d)
			if err != nil {
				return err
			}
			m.Apps = append(m.Apps, a)
		case "user":
			u, err := unmarshalUser(d)
			if err != nil {
				return err
			}
			m.Users = append(m.Users, u)
		case "allow_non_loopback":
			m.AllowNonLoopback = true
		case "base_url":
			if !d.NextArg() {
				return d.ArgErr()
			}
			m.BaseURL = d.Val()
		case "ready_url":
			if !d.NextArg() {
				return d.ArgErr()
			}
			m.ReadyURL = d.Val()
		default:
			return d.Errf("entra_emulator: unknown subdirective %q", d.Val())
		}
	}
	return nil
}

func parseEmulator(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	m := new(Emulator)
	return m, m.UnmarshalCaddyfile(h.Dispenser)
}

type nonLoopbackError struct{}

func (nonLoopbackError) Error() string {
	return "the Entra emulator mints tokens and answers only on loopback addresses (set allow_non_loopback to change this)"
}

var errNonLoopback = nonLoopbackError{}

// EchoAPI is a stub downstream API: it checks the bearer token was issued by the emulator and answers with the
// caller's identity as JSON.
type EchoAPI struct {
	api http.Handler
}

// CaddyModule returns the Caddy module information.
func (EchoAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.handlers.echo_api", New: func() caddy.Module { return new(EchoAPI) }}
}

// Provision attaches to the process's emulator, whose keys sign the tokens it checks.
func (m *EchoAPI) Provision(caddy.Context) error {
	emu, err := loadEmulator(emulatorKey, nil, nil)
	if err != nil {
		return err
	}
	m.api = entraemu.NewDownstreamAPI(emu)
	return nil
}

// Cleanup releases this config's hold on the emulator.
func (m *EchoAPI) Cleanup() error {
	_, err := emulators.Delete(emulatorKey)
	return err
}

func (m *EchoAPI) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	if emu := lastProvisioned.Load(); emu != nil {
		entraemu.NewDownstreamAPI(emu).ServeHTTP(w, r) // cheap: a closure over emu
		return nil
	}
	m.api.ServeHTTP(w, r)
	return nil
}

// UnmarshalCaddyfile sets up the stub API. Syntax:
//
//	echo_api
func (m *EchoAPI) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	if d.NextArg() || d.NextBlock(0) {
		return d.Err("echo_api takes no arguments")
	}
	return nil
}

func parseEchoAPI(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	m := new(EchoAPI)
	return m, m.UnmarshalCaddyfile(h.Dispenser)
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Emulator)(nil)
	_ caddy.CleanerUpper          = (*Emulator)(nil)
	_ caddyhttp.MiddlewareHandler = (*Emulator)(nil)
	_ caddyfile.Unmarshaler       = (*Emulator)(nil)
	_ caddy.Provisioner           = (*EchoAPI)(nil)
	_ caddy.CleanerUpper          = (*EchoAPI)(nil)
	_ caddyhttp.MiddlewareHandler = (*EchoAPI)(nil)
	_ caddyfile.Unmarshaler       = (*EchoAPI)(nil)
)
