// Package sessiontest is the conformance suite of session.Store, in the manner of oauth2-proxy's
// RunSessionStoreTests: every implementation runs it from its own tests, so a new tier (Redis) is done when it
// passes the same tests as the in-memory one.
//
//	func TestMemoryStore(t *testing.T) {
//		sessiontest.RunStoreTests(t, func(t *testing.T) (session.Store, sessiontest.Clock) {
//			clock := testenv.NewClock(time.Time{})
//			return session.NewMemoryStore(0, clock.Now), clock
//		})
//	}
package sessiontest

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/tokeninjector/caddy-token-injector/internal/dev/testenv"
	"github.com/tokeninjector/caddy-token-injector/internal/session"
)

// Clock is the time the store under test sees; the suite moves it forward. *testenv.Clock is one.
type Clock interface {
	Now() time.Time
	Advance(d time.Duration)
}

// NewStore returns an empty store reading time from the returned clock.
type NewStore func(t *testing.T) (session.Store, Clock)

const (
	alice = "aaaaaaaa-0000-4000-8000-000000000001.tenant-1"
	bob   = "bbbbbbbb-0000-4000-8000-000000000002.tenant-1"
)

// RunStoreTests is the conformance suite of a session.Store.
func RunStoreTests(t *testing.T, newStore NewStore) {
	t.Run("Miss", func(t *testing.T) {
		s, _ := newStore(t)
		want(t, s, "unknown", "")
	})
	t.Run("RoundTrip", func(t *testing.T) { testRoundTrip(t, newStore) })
	t.Run("Replace", func(t *testing.T) {
		s, clock := newStore(t)
		put(t, s, session.Session{ID: "s1", UserKey: alice, Name: "first"}, time.Minute)
		put(t, s, session.Session{ID: "s1", UserKey: alice, Name: "second"}, time.Hour)
		want(t, s, "s1", "second")
		clock.Advance(2 * time.Minute) // the replacement's ttl counts, not the first one's
		want(t, s, "s1", "second")
	})
	t.Run("TTLExpiry", func(t *testing.T) {
		s, clock := newStore(t)
		put(t, s, session.Session{ID: "s1", UserKey: alice, Name: "a"}, time.Minute)
		clock.Advance(time.Minute - time.Second)
		want(t, s, "s1", "a")
		clock.Advance(time.Second)
		want(t, s, "s1", "")
	})
	t.Run("BadTTL", func(t *testing.T) {
		s, _ := newStore(t)
		for _, ttl := range []time.Duration{0, -time.Second} {
			if err := s.Put(t.Context(), session.Session{ID: "s1", UserKey: alice}, ttl); !errors.Is(err, session.ErrBadTTL) {
				t.Errorf("Put with ttl %v = %v, want ErrBadTTL", ttl, err)
			}
		}
		want(t, s, "s1", "")
	})
	t.Run("NoID", func(t *testing.T) {
		s, _ := newStore(t)
		if err := s.Put(t.Context(), session.Session{UserKey: alice}, time.Hour); err == nil {
			t.Fatal("a session without an ID was stored")
		}
	})
	t.Run("Delete", func(t *testing.T) {
		s, _ := newStore(t)
		put(t, s, session.Session{ID: "s1", UserKey: alice, Name: "a"}, time.Hour)
		put(t, s, session.Session{ID: "s2", UserKey: alice, Name: "b"}, time.Hour)
		for _, id := range []string{"s1", "unknown"} {
			if err := s.Delete(t.Context(), id); err != nil {
				t.Fatalf("Delete(%s): %v", id, err)
			}
		}
		want(t, s, "s1", "")
		want(t, s, "s2", "b")
	})
	t.Run("Touch", func(t *testing.T) { testTouch(t, newStore) })
	t.Run("DeleteUser", func(t *testing.T) { testDeleteUser(t, newStore) })
	t.Run("PerUserBound", func(t *testing.T) { testPerUserBound(t, newStore) })
	t.Run("ConcurrentUse", func(t *testing.T) { testConcurrentUse(t, newStore) })
}

func testRoundTrip(t *testing.T, newStore NewStore) {
	s, clock := newStore(t)
	now := clock.Now()
	in := session.Session{ID: "s1", UserKey: alice, ObjectID: "aaaaaaaa-0000-4000-8000-000000000001",
		TenantID: "tenant-1", Username: "alice@contoso.example", Name: "Alice", CreatedAt: now.Add(-time.Hour),
		LastSeenAt: now}
	put(t, s, in, time.Hour)
	got, ok, err := s.Get(t.Context(), "s1")
	if err != nil || !ok {
		t.Fatalf("Get = %v, %v", ok, err)
	}
	if got.ID != in.ID || got.UserKey != in.UserKey || got.ObjectID != in.ObjectID || got.TenantID != in.TenantID ||
		got.Username != in.Username || got.Name != in.Name || !got.CreatedAt.Equal(in.CreatedAt) ||
		!got.LastSeenAt.Equal(in.LastSeenAt) {
		t.Fatalf("got %+v, want %+v", got, in)
	}
}

// testTouch: a touch replaces a stored session and restarts its ttl, and brings back none that ended. (Not one
// that expired: Redis drops it at its ttl in real time, which the suite's clock does not move; lru tests that.)
func testTouch(t *testing.T, newStore NewStore) {
	s, clock := newStore(t)
	ctx := t.Context()
	put(t, s, session.Session{ID: "s1", UserKey: alice, Name: "a"}, time.Minute)
	put(t, s, session.Session{ID: "s2", UserKey: alice, Name: "b"}, time.Minute)
	if err := s.Delete(ctx, "s2"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ id, name string }{{"s1", "touched"}, {"s2", ""}, {"unknown", ""}} {
		if err := s.Touch(ctx, session.Session{ID: tc.id, UserKey: alice, Name: "touched"}, time.Hour); err != nil {
			t.Fatalf("Touch(%s): %v", tc.id, err)
		}
		want(t, s, tc.id, tc.name)
	}
	clock.Advance(time.Hour - time.Second) // the touch's ttl counts, not the Put's
	want(t, s, "s1", "touched")
	if err := s.Touch(ctx, session.Session{ID: "s1", UserKey: alice}, 0); !errors.Is(err, session.ErrBadTTL) {
		t.Fatalf("Touch with ttl 0 = %v, want ErrBadTTL", err)
	}
}

func testDeleteUser(t *testing.T, newStore NewStore) {
	s, _ := newStore(t)
	ctx := t.Context()
	put(t, s, session.Session{ID: "a1", UserKey: alice, Name: "a1"}, time.Hour)
	put(t, s, session.Session{ID: "a2", UserKey: alice, Name: "a2"}, time.Hour)
	put(t, s, session.Session{ID: "b1", UserKey: bob, Name: "b1"}, time.Hour)
	put(t, s, session.Session{ID: "anon", Name: "anon"}, time.Hour) // no user key
	if n, err := s.DeleteUser(ctx, ""); err != nil || n != 0 {
		t.Fatalf("DeleteUser(\"\") = %d, %v; want 0: never every session without a user", n, err)
	}
	want(t, s, "anon", "anon")
	if n, err := s.DeleteUser(ctx, alice); err != nil || n != 2 {
		t.Fatalf("DeleteUser(alice) = %d, %v; want 2", n, err)
	}
	want(t, s, "a1", "")
	want(t, s, "a2", "")
	want(t, s, "b1", "b1")
	if n, err := s.DeleteUser(ctx, alice); err != nil || n != 0 {
		t.Fatalf("DeleteUser(alice) again = %d, %v; want 0", n, err)
	}
}

// testPerUserBound: a user's sign-ins beyond MaxSessionsPerUser end that user's oldest sessions, and no other
// user's; sessions that ended, and a session stored again, do not count against the bound.
func testPerUserBound(t *testing.T, newStore NewStore) {
	s, clock := newStore(t)
	ctx := t.Context()
	signIn := func(id, user string) {
		clock.Advance(time.Second)
		put(t, s, session.Session{ID: id, UserKey: user, Name: id, CreatedAt: clock.Now()}, time.Hour)
	}
	signIn("bob", bob)
	max := session.MaxSessionsPerUser
	for i := range max {
		signIn(fmt.Sprint("a", i), alice)
	}
	if err := s.Delete(ctx, "a1"); err != nil { // a logout frees a place
		t.Fatal(err)
	}
	signIn(fmt.Sprint("a", max), alice)
	for i := range max + 1 {
		if id := fmt.Sprint("a", i); i == 1 {
			want(t, s, id, "")
		} else {
			want(t, s, id, id)
		}
	}
	last := fmt.Sprint("a", max)
	put(t, s, session.Session{ID: last, UserKey: alice, Name: last, CreatedAt: clock.Now()}, time.Hour) // again
	want(t, s, "a0", "a0")
	signIn("new1", alice)
	signIn("new2", alice)
	want(t, s, "a0", "")
	want(t, s, "a2", "")
	want(t, s, "a3", "a3")
	want(t, s, "new1", "new1")
	want(t, s, "new2", "new2")
	want(t, s, "bob", "bob")
	if n, err := s.DeleteUser(ctx, alice); err != nil || n != max {
		t.Fatalf("DeleteUser(alice) = %d, %v; want the bound, %d", n, err, max)
	}
}

func testConcurrentUse(t *testing.T, newStore NewStore) {
	s, _ := newStore(t)
	ctx := t.Context()
	testenv.Concurrently(t, 8, 300, func(_, i int) error {
		id, user := fmt.Sprint("s", i%40), []string{alice, bob}[i%2]
		var err error
		switch i % 10 {
		case 9:
			_, err = s.DeleteUser(ctx, user)
		case 7:
			err = s.Delete(ctx, id)
		case 0, 3, 5:
			err = s.Put(ctx, session.Session{ID: id, UserKey: user, Name: id}, time.Hour)
		default:
			var got session.Session
			var ok bool
			if got, ok, err = s.Get(ctx, id); err == nil && ok && got.Name != id {
				err = fmt.Errorf("Get(%s) returned session %s", id, got.ID)
			}
		}
		return err
	})
	put(t, s, session.Session{ID: "after", UserKey: alice, Name: "after"}, time.Hour)
	want(t, s, "after", "after")
}

func put(t *testing.T, s session.Store, v session.Session, ttl time.Duration) {
	t.Helper()
	if err := s.Put(t.Context(), v, ttl); err != nil {
		t.Fatalf("Put(%s): %v", v.ID, err)
	}
}

// want checks that Get(id) returns a session named name, or a miss when name is empty.
func want(t *testing.T, s session.Store, id, name string) {
	t.Helper()
	got, ok, err := s.Get(t.Context(), id)
	switch {
	case err != nil:
		t.Fatalf("Get(%s): %v", id, err)
	case name == "" && ok:
		t.Fatalf("Get(%s) = session %q, want a miss", id, got.Name)
	case name != "" && (!ok || got.Name != name):
		t.Fatalf("Get(%s) = %q, %v, want %q", id, got.Name, ok, name)
	}
}
