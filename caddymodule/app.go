package caddymodule

import (
	"fmt"

	"github.com/caddyserver/caddy/v2"
)

const appName = "token_injector"

// App holds the app registration shared by every token_injector handler that has none of its own. It is set with
// the global token_injector option, so /graph/* and /api/* routes can use one registration and one token cache.
type App struct {
	Registration
	// Redis is the shared tier every route of every registration uses. Default: none, each replica's memory only.
	Redis *Redis `json:"redis,omitempty"`

	published *publishedKeys // this config's, see publishedkeys.go
	ctx       caddy.Context  // for Start's checks of the whole config
}

// Provision keeps the config's context for Start.
func (a *App) Provision(ctx caddy.Context) error {
	a.ctx = ctx
	return nil
}

// CaddyModule returns the Caddy module information.
func (App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  appName,
		New: func() caddy.Module { return &App{published: new(publishedKeys)} },
	}
}

// Validate checks the shared registration at load time, placeholders resolved, naming the field at fault.
func (a *App) Validate() error {
	if _, err := a.Redis.resolve(); err != nil {
		return fmt.Errorf("token_injector (global option): %w", err)
	}
	if a.Registration.isZero() {
		return nil // no global option: handlers loaded the app for this config's shared checks
	}
	if _, err := a.Registration.resolve(); err != nil {
		return fmt.Errorf("token_injector (global option): %w", err)
	}
	return nil
}

// Start runs the checks that need the whole config provisioned. The shared state belongs to the handlers'
// pool, so it outlives this config.
func (a *App) Start() error {
	a.warnAnonymousOffLoopback()
	return a.checkPublishedKeys()
}

// Stop does nothing; see Start.
func (a *App) Stop() error { return nil }

// Interface guards
var (
	_ caddy.App         = (*App)(nil)
	_ caddy.Provisioner = (*App)(nil)
	_ caddy.Validator   = (*App)(nil)
)
