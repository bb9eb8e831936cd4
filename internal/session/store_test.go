package session_test

import (
	"context"
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

// TestMemoryStoreCountsItsEnds: the count a Manager trusts a check by moves with every end of a session, for that
// session's shard of IDs only where the session is known, and with nothing else, so a touch, another user's
// sign-in or logout does not send every remembered cookie back to the store.
func TestMemoryStoreCountsItsEnds(t *testing.T) {
	clock := testenv.NewClock(time.Time{})
	st := session.NewMemoryStore(60, clock.Now)
	ends := st.(session.EndCounter)
	ctx := t.Context()
	put := func(id, user string) {
		if err := st.Put(ctx, session.Session{ID: id, UserKey: user}, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	var watched []string // sessions that stay
	for i := range 40 {
		id := fmt.Sprintf("%c%c-watched", 'A'+i%26, 'a'+i/26)
		watched = append(watched, id)
		put(id, "w")
	}
	const few, all = -1, -2
	steps := []struct {
		name   string
		do     func()
		ended  string // a session that ends, whose count must move
		others int    // how many of the watched counts move: 0, few (under 5 of 40) or all
	}{
		{"a new session", func() { put("alice-1", "alice"); put("bob-1", "bob"); put("bob-2", "bob") }, "", 0},
		{"a touch", func() { put("alice-1", "alice") }, "", 0},
		{"a lookup", func() { _, _, _ = st.Get(ctx, "alice-1") }, "", 0},
		{"deleting an unknown id", func() { _ = st.Delete(ctx, "nobody") }, "", 0},
		{"signing out a user without sessions", func() { _, _ = st.DeleteUser(ctx, "carol") }, "", 0},
		{"a logout", func() { _ = st.Delete(ctx, "alice-1") }, "alice-1", few},
		{"signing out everywhere", func() { _, _ = st.DeleteUser(ctx, "bob") }, "bob-2", few},
		{"filling the store past its bound", func() {
			for i := range 100 {
				put(fmt.Sprint("filler-", i), "x")
			}
		}, "", all},
		{"a flush", func() { st.(session.Flusher).Flush() }, "", all},
	}
	for _, step := range steps {
		before := map[string]uint64{step.ended: ends.Ends(session.ShardOf(step.ended))}
		for _, id := range watched {
			before[id] = ends.Ends(session.ShardOf(id))
		}
		step.do()
		if step.ended != "" && ends.Ends(session.ShardOf(step.ended)) == before[step.ended] {
			t.Errorf("%s: the count of the session that ended did not move", step.name)
		}
		moved := 0
		for _, id := range watched {
			if ends.Ends(session.ShardOf(id)) != before[id] {
				moved++
			}
		}
		if want := step.others; want >= 0 && moved != want || want == few && moved >= 5 || want == all && moved != len(watched) {
			t.Errorf("%s: %d of %d other sessions' counts moved", step.name, moved, len(watched))
		}
	}
}

// BenchmarkTouch is what a remembered cookie costs the memory store once a minute: the liveness Get and the Put of
// its new LastSeenAt, which replaces the session in place. Over 50,000 sessions, taken in a scattered order, each
// touch finds its session cold, as a large tenant's do: their requests come a minute and more apart.
//
//	go test -run '^$' -bench Touch -benchmem ./internal/session
func BenchmarkTouch(b *testing.B) {
	for _, n := range []int{1, 50_000} {
		b.Run(fmt.Sprintf("sessions=%d", n), func(b *testing.B) {
			ctx := context.Background()
			st := session.NewMemoryStore(0, nil)
			ids := make([]string, n)
			for i := range ids {
				ids[i] = fmt.Sprintf("3q2-7w%037d", i) // a session id's length
				u := fmt.Sprintf("%036d.%036d", i, i)
				if err := st.Put(ctx, session.Session{ID: ids[i], UserKey: u, ObjectID: u[:36], TenantID: u[37:]}, time.Hour); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				v, ok, err := st.Get(ctx, ids[i])
				if err != nil || !ok {
					b.Fatal("no session")
				}
				v.LastSeenAt = time.Now()
				if err := st.Put(ctx, v, time.Hour); err != nil {
					b.Fatal(err)
				}
				i = (i + 7919) % n // a prime stride, as BenchmarkCaller's
			}
		})
	}
}
