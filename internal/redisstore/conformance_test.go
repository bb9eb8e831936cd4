package redisstore_test

import (
	"crypto/rand"
	"fmt"
	"testing"
	"time"

	"github.com/tokeninjector/caddy-token-injector/internal/dev/testenv"
	"github.com/tokeninjector/caddy-token-injector/internal/redisstore"
	"github.com/tokeninjector/caddy-token-injector/internal/session"
	"github.com/tokeninjector/caddy-token-injector/internal/session/sessiontest"
	"github.com/tokeninjector/caddy-token-injector/internal/tokencache"
	"github.com/tokeninjector/caddy-token-injector/internal/tokencache/tokencachetest"
)

func newKey() []byte {
	k := make([]byte, 32)
	_, _ = rand.Read(k)
	return k
}

// newClient returns a client of srv whose keys live under a prefix of their own, so every store starts empty.
func newClient(t *testing.T, srv *testenv.Redis, clock *testenv.Clock, keys ...[]byte) *redisstore.Client {
	t.Helper()
	if len(keys) == 0 {
		keys = [][]byte{newKey()}
	}
	c, err := redisstore.Open(redisstore.Config{URL: srv.URL, Keys: keys, Now: clock.Now,
		Prefix: fmt.Sprintf("test%x:", newKey()[:6]), Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestTokensConformance(t *testing.T) {
	srv := testenv.StartRedis(t)
	tokencachetest.RunCacheTests(t, func(t *testing.T, cfg tokencachetest.Config) (tokencache.Cache, tokencachetest.Clock) {
		clock := testenv.NewClock(time.Time{})
		return redisstore.NewTokens(newClient(t, srv, clock), cfg.Margin), clock
	}, tokencachetest.Options{})
}

func TestSessionsConformance(t *testing.T) {
	srv := testenv.StartRedis(t)
	sessiontest.RunStoreTests(t, func(t *testing.T) (session.Store, sessiontest.Clock) {
		clock := testenv.NewClock(time.Time{})
		return redisstore.NewSessions(newClient(t, srv, clock)), clock
	})
}

func TestTieredCacheConformance(t *testing.T) {
	srv := testenv.StartRedis(t)
	newTiered := func(t *testing.T, cfg tokencachetest.Config) (tokencache.Cache, tokencachetest.Clock) {
		clock := testenv.NewClock(time.Time{})
		l1 := tokencache.NewMemory(cfg.MaxEntries, cfg.Margin, clock.Now)
		return redisstore.NewTieredCache(l1, redisstore.NewTokens(newClient(t, srv, clock), cfg.Margin)), clock
	}
	tokencachetest.RunCacheTests(t, newTiered, tokencachetest.Options{})
	t.Run("Memo", func(t *testing.T) { tokencachetest.RunMemoTests(t, newTiered) })
}

func TestTieredSessionsConformance(t *testing.T) {
	srv := testenv.StartRedis(t)
	sessiontest.RunStoreTests(t, func(t *testing.T) (session.Store, sessiontest.Clock) {
		clock := testenv.NewClock(time.Time{})
		return redisstore.NewTieredSessions(session.NewMemoryStore(0, clock.Now),
			redisstore.NewSessions(newClient(t, srv, clock))), clock
	})
}
