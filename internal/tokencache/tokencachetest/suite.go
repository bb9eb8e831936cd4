// Package tokencachetest holds the conformance suites of the token cache's stores, in the manner of oauth2-proxy's
// RunSessionStoreTests: every implementation of tokencache.TokenStore and tokencache.AccountStore runs them from
// its own tests, so a new tier (Redis) is done when it passes the same tests as the in-memory one.
//
//	func TestMemory(t *testing.T) {
//		tokencachetest.RunCacheTests(t, func(t *testing.T, cfg tokencachetest.Config) (tokencache.Cache, tokencachetest.Clock) {
//			clock := testenv.NewClock(time.Time{})
//			return tokencache.NewMemory(cfg.MaxEntries, cfg.Margin, clock.Now), clock
//		}, tokencachetest.Options{Bounded: true})
//	}
package tokencachetest

import (
	"testing"
	"time"

	"github.com/tokeninjector/caddy-token-injector/internal/dev/testenv"
	"github.com/tokeninjector/caddy-token-injector/internal/tokencache"
)

// Clock is the time the store under test sees; the suites move it forward. *testenv.Clock is one.
type Clock interface {
	Now() time.Time
	Advance(d time.Duration)
}

// Config is what a suite asks of a new store.
type Config struct {
	// MaxEntries is the bound of a bounded store (see Options.Bounded); others ignore it.
	MaxEntries int
	// Margin is how long before its expiry a token must stop being returned.
	Margin time.Duration
}

// Options describe the implementation under test.
type Options struct {
	// Bounded says the store holds at most Config.MaxEntries tokens (and as many accounts), evicting the least
	// recently used first; the suites then check that bound. A store without a bound leaves it false.
	Bounded bool
}

// NewCache returns an empty store configured by cfg, reading time from the returned clock.
type NewCache func(t *testing.T, cfg Config) (tokencache.Cache, Clock)

// RunCacheTests runs RunTokenStoreTests and RunAccountStoreTests on a store that is both, and checks that its
// DeleteUser forgets the user's tokens and account together.
func RunCacheTests(t *testing.T, newCache NewCache, opts Options) {
	t.Run("TokenStore", func(t *testing.T) {
		RunTokenStoreTests(t, func(t *testing.T, cfg Config) (tokencache.TokenStore, Clock) {
			return newCache(t, cfg)
		}, opts)
	})
	t.Run("AccountStore", func(t *testing.T) {
		RunAccountStoreTests(t, func(t *testing.T, cfg Config) (tokencache.AccountStore, Clock) {
			return newCache(t, cfg)
		}, opts)
	})
	t.Run("DeleteUserForgetsTokensAndAccount", func(t *testing.T) {
		c, clock := newCache(t, Config{MaxEntries: 100})
		ctx := t.Context()
		exp := clock.Now().Add(time.Hour)
		for _, u := range []string{userA, userB} {
			mustSet(t, c, tokencache.Key{User: u, Scopes: scopesX}, token(u, exp))
			mustSetAccount(t, c, u, account(u, exp))
		}
		if err := c.DeleteUser(ctx, userA); err != nil {
			t.Fatal(err)
		}
		wantToken(t, c, tokencache.Key{User: userA, Scopes: scopesX}, "")
		wantAccount(t, c, userA, "")
		wantToken(t, c, tokencache.Key{User: userB, Scopes: scopesX}, userB)
		wantAccount(t, c, userB, userB)
	})
}

const (
	userA   = "aaaaaaaa-0000-4000-8000-000000000001.tenant-1"
	userB   = "bbbbbbbb-0000-4000-8000-000000000002.tenant-1"
	scopesX = "https://graph.microsoft.com/user.read"
	scopesY = "https://graph.microsoft.com/mail.read https://graph.microsoft.com/user.read"
)

func token(access string, expires time.Time) tokencache.Token {
	return tokencache.Token{AccessToken: access, ExpiresOn: expires, RefreshOn: expires.Add(-10 * time.Minute)}
}

func account(msal string, expires time.Time) tokencache.Account {
	return tokencache.Account{MSAL: []byte(msal), Scopes: []string{"openid", scopesX}, ExpiresOn: expires}
}

// concurrently runs f(goroutine, i) from 8 goroutines, 300 times each, and fails on the first error.
func concurrently(t *testing.T, f func(g, i int) error) { testenv.Concurrently(t, 8, 300, f) }
