package testenv

import (
	"log"
	"os"

	"github.com/tokeninjector/caddy-token-injector/internal/dev/entraemu"
)

// Env is the one test environment: the emulator for a tenant over HTTPS, a recording upstream in front of the
// emulator's token-checking downstream API, and a temporary directory for files (the CA, logs, Caddy's data).
type Env struct {
	*IdP
	// Upstream records every request's headers and answers with the emulator's downstream API: it checks the
	// bearer token the emulator issued and echoes its claims as JSON.
	Upstream *Upstream
	Dir      string
}

// Options configures Start.
type Options struct {
	// Tenant is the emulated tenant; nil means entraemu.DefaultConfig().
	Tenant *entraemu.Config
	// ErrorLog receives the servers' errors; nil uses the log package's default logger.
	ErrorLog *log.Logger
}

// Start starts the emulator and the upstream. Close stops them and removes Dir.
func Start(o Options) (env *Env, err error) {
	cfg := entraemu.DefaultConfig()
	if o.Tenant != nil {
		cfg = *o.Tenant
	}
	e := &Env{}
	defer func() {
		if err != nil {
			e.Close()
		}
	}()
	if e.Dir, err = os.MkdirTemp("", "token-injector-test-"); err != nil {
		return nil, err
	}
	if e.IdP, err = StartIdP(cfg, IdPOptions{Dir: e.Dir, ErrorLog: o.ErrorLog}); err != nil {
		return nil, err
	}
	e.Upstream, err = StartUpstream(entraemu.NewDownstreamAPI(e.Emu), UpstreamOptions{Record: true, ErrorLog: o.ErrorLog})
	return e, err
}

// NewBrowser returns a browser that trusts the emulator; o.TLS is filled in when nil.
func (e *Env) NewBrowser(o BrowserOptions) *Browser {
	if o.TLS == nil {
		o.TLS = e.TLSConfig()
	}
	return NewBrowser(o)
}

// Close stops everything Start started and removes Dir.
func (e *Env) Close() {
	if e.Upstream != nil {
		e.Upstream.Close()
	}
	if e.IdP != nil {
		e.IdP.Close()
	}
	if e.Dir != "" {
		_ = os.RemoveAll(e.Dir)
	}
}
