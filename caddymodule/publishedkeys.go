package caddymodule

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/caddyserver/caddy/v2"
)

// publishedCookieKeys are the cookie keys this repository publishes (the demo's, the tests'). Anyone can seal a
// session or a sign-in hand-off with them, so they sign real sessions only for the built-in emulator.
var publishedCookieKeys = []string{
	"demo-only-cookie-secret-32-bytes",
	"other-demo-cookie-secret-32-byte",
	"0123456789abcdef0123456789abcdef",
}

// isPublishedKey compares decoded bytes, so no spelling (padding, URL alphabet) slips through.
func isPublishedKey(k []byte) bool {
	for _, p := range publishedCookieKeys {
		if subtle.ConstantTimeCompare(k, []byte(p)) == 1 {
			return true
		}
	}
	return false
}

// publishedKeys is what the App checks when the config starts: registrations that use a published cookie key,
// and the emulators the config runs.
type publishedKeys struct {
	mu         sync.Mutex
	users      []string // authority hosts of registrations signing sessions with a published key
	emulations []string // base URLs the config's built-in emulators answer as
}

// DeclareEmulator records that ctx's config runs the built-in Entra emulator at baseURL. A registration whose
// authority_host it is may use the repository's demo cookie keys; no other registration may.
func DeclareEmulator(ctx caddy.Context, baseURL string) error {
	a, err := configApp(ctx)
	if err != nil {
		return err
	}
	a.published.mu.Lock()
	a.published.emulations = append(a.published.emulations, strings.TrimSuffix(baseURL, "/"))
	a.published.mu.Unlock()
	return nil
}

// configApp returns the config's App: the global option's, or an implicit one when there is none, so that its
// Start runs the checks that need the whole config provisioned. A context without a config (a unit test's
// caddy.NewContext, where ctx.App would panic) gets a detached App.
func configApp(ctx caddy.Context) (*App, error) {
	app, err := ctx.AppIfConfigured(appName)
	switch {
	case err == nil:
		return app.(*App), nil
	case !errors.Is(err, caddy.ErrNotConfigured):
		return nil, err
	case ctx.FileSystems() != ctx.FileSystems():
		// Only a context without a config answers with a new file system map each time.
		return &App{published: new(publishedKeys)}, nil
	}
	if app, err = ctx.App(appName); err != nil {
		return nil, err
	}
	return app.(*App), nil
}

// usePublishedKey records that a registration of authority signs sessions with a published key.
func (a *App) usePublishedKey(authority string) {
	a.published.mu.Lock()
	a.published.users = append(a.published.users, authority)
	a.published.mu.Unlock()
}

// checkPublishedKeys fails the config if a published key signs sessions for an authority that is not the
// config's own emulator. It runs at Start, when every module, emulators included, has been provisioned.
func (a *App) checkPublishedKeys() error {
	a.published.mu.Lock()
	defer a.published.mu.Unlock()
	for _, authority := range a.published.users {
		emulated := false
		for _, e := range a.published.emulations {
			emulated = emulated || strings.EqualFold(e, authority)
		}
		if !emulated {
			return fmt.Errorf("token_injector: sign_in: cookie_secret: a key published in this repository (the demo's or the tests') "+
				"signs sessions for %s: anyone could forge them. Make a key with `openssl rand -base64 32` and pass it "+
				"with {env.COOKIE_SECRET}", authority)
		}
	}
	return nil
}
