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

// TestMemoryStoreCountsItsEnds: the count a Manager trusts a check by moves with every end of a session and
// with nothing else, so a touch or another user's sign-in does not send every remembered cookie to the store.
func TestMemoryStoreCountsItsEnds(t *testing.T) {
	clock := testenv.NewClock(time.Time{})
	st := session.NewMemoryStore(10, clock.Now)
	ends := st.(session.EndCounter)
	ctx := t.Context()
	put := func(id, user string) {
		if err := st.Put(ctx, session.Session{ID: id, UserKey: user}, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	steps := []struct {
		name  string
		do    func()
		moves bool
	}{
		{"a new session", func() { put("a", "alice") }, false},
		{"a touch", func() { put("a", "alice") }, false},
		{"a lookup", func() { _, _, _ = st.Get(ctx, "a") }, false},
		{"deleting an unknown id", func() { _ = st.Delete(ctx, "nobody") }, false},
		{"signing out a user without sessions", func() { _, _ = st.DeleteUser(ctx, "carol") }, false},
		{"a logout", func() { _ = st.Delete(ctx, "a") }, true},
		{"signing out everywhere", func() { put("b", "bob"); _, _ = st.DeleteUser(ctx, "bob") }, true},
		{"filling the store past its bound", func() {
			for i := range 100 {
				put(fmt.Sprint("filler-", i), "x")
			}
		}, true},
		{"a flush", func() { st.(session.Flusher).Flush() }, true},
	}
	for _, step := range steps {
		before := ends.Ends()
		step.do()
		if moved := ends.Ends() != before; moved != step.moves {
			t.Errorf("%s: the count moved %v, want %v", step.name, moved, step.moves)
		}
	}
}
