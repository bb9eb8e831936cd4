package session_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/tokeninjector/caddy-token-injector/internal/dev/testenv"
	"github.com/tokeninjector/caddy-token-injector/internal/session"
	"github.com/tokeninjector/caddy-token-injector/internal/session/sessiontest"
)

func TestMemoryStore(t *testing.T) {
	sessiontest.RunStoreTests(t, func(*testing.T) (session.Store, sessiontest.Clock) {
		clock := testenv.NewClock(time.Time{})
		return session.NewMemoryStore(0, clock.Now), clock // the default bound
	})
}

// TestMemoryStoreBound is the in-memory store's own promise: at most max sessions, the least recently used evicted.
func TestMemoryStoreBound(t *testing.T) {
	clock := testenv.NewClock(time.Time{})
	st := session.NewMemoryStore(10, clock.Now)
	ctx := t.Context()
	for i := range 25 {
		if err := st.Put(ctx, session.Session{ID: fmt.Sprint(i), UserKey: "u"}, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	for i := range 25 {
		if _, ok, _ := st.Get(ctx, fmt.Sprint(i)); ok {
			n++
		}
	}
	if n != 10 {
		t.Fatalf("%d sessions kept, want 10", n)
	}
	if _, ok, _ := st.Get(ctx, "24"); !ok {
		t.Fatal("the newest session was evicted")
	}
	if _, ok, _ := st.Get(ctx, "0"); ok {
		t.Fatal("the oldest session was kept")
	}
}
