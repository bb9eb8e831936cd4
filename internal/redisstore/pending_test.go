package redisstore

import (
	"context"
	"fmt"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/tokeninjector/caddy-token-injector/internal/dev/testenv"
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
