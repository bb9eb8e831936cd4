package redisstore

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/tokeninjector/caddy-token-injector/internal/dev/testenv"
	"github.com/tokeninjector/caddy-token-injector/internal/session"
)

// While Redis is down, at most maxPending logouts wait for it: a repeated one is kept once, and past the bound the
// oldest is dropped with a warning that names neither the session nor the user.
func TestPendingLogoutsAreBounded(t *testing.T) {
	srv := testenv.StartRedis(t)
	core, logs := observer.New(zap.WarnLevel)
	c, err := Open(Config{URL: srv.URL, Keys: [][]byte{make([]byte, 32)}, Timeout: 200 * time.Millisecond,
		Logger: zap.New(core)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sessions := NewSessions(c)
	srv.Kill()
	ctx := context.Background()
	end := func(id string) {
		_, _ = c.pending.end(ctx, invalidSession, id, func(ctx context.Context) (int, error) {
			return 0, sessions.Delete(ctx, id)
		})
	}
	for range 50 {
		end("replayed-cookie")
	}
	for i := range maxPending {
		end(fmt.Sprintf("session-%d", i))
	}
	c.pending.mu.Lock()
	n, first := len(c.pending.ops), c.pending.ops[0].value
	c.pending.mu.Unlock()
	if n != maxPending || first != "session-0" {
		t.Fatalf("%d kept, the oldest %q; want %d, the repeated logout kept once and dropped first", n, first, maxPending)
	}
	entries := logs.All()
	if len(entries) != 1 || entries[0].ContextMap()["dropped"] != int64(1) {
		t.Fatalf("log %v, want one warning of one dropped logout", entries)
	}
	for _, f := range entries[0].Context {
		if f.String == "replayed-cookie" {
			t.Fatal("the warning names the session")
		}
	}
}

// Release closes the client at once when nothing waits for Redis; otherwise once what waits has reached Redis (a
// logout made while this replica could not reach it, then a reload), or after the grace.
func TestReleaseKeepsPendingLogouts(t *testing.T) {
	for _, tc := range []struct {
		name      string
		logout    bool // one made while Redis is unreachable
		back      bool // Redis is reachable again within the grace
		wantEnded bool
	}{
		{"nothing waits", false, true, false},
		{"Redis back within the grace", true, true, true},
		{"Redis away past the grace", true, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := testenv.StartRedis(t)
			gate := testenv.NewGate(t, srv.Addr)
			keys := [][]byte{make([]byte, 32)}
			c, err := Open(Config{URL: "redis://" + gate.Addr() + "/0", Keys: keys, Timeout: 200 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			sessions := NewSessions(c)
			s := session.Session{ID: "logged-out-during-the-outage", UserKey: "u"}
			if err := sessions.Put(ctx, s, time.Hour); err != nil {
				t.Fatal(err)
			}
			if tc.logout {
				gate.Set(false)
				_, _ = c.pending.end(ctx, invalidSession, s.ID, func(ctx context.Context) (int, error) {
					return 0, sessions.Delete(ctx, s.ID)
				})
			}
			c.Release(2 * time.Second)
			gate.Set(tc.back)
			closed := func() bool { return c.rdb.Ping(ctx).Err() == redis.ErrClosed }
			for deadline := time.Now().Add(5 * time.Second); !closed(); time.Sleep(50 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatal("5 s after Release the client is open")
				}
			}
			other, err := Open(Config{URL: srv.URL, Keys: keys, Timeout: time.Second})
			if err != nil {
				t.Fatal(err)
			}
			defer other.Close()
			if _, found, err := NewSessions(other).Get(ctx, s.ID); err != nil || found == tc.wantEnded {
				t.Fatalf("the session found %v (%v), want ended %v", found, err, tc.wantEnded)
			}
		})
	}
}
