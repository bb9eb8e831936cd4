package redisstore

import (
	"fmt"
	"testing"
	"time"

	"github.com/tokeninjector/caddy-token-injector/internal/dev/testenv"
	"github.com/tokeninjector/caddy-token-injector/internal/session"
)

// A user's sign-ins on replica A beyond the bound end the user's oldest session on replica B too, which had it in
// its L1; the index in Redis lists no more than the bound.
func TestPerUserBoundEndsTheOldestOnEveryReplica(t *testing.T) {
	srv := testenv.StartRedis(t)
	ctx := t.Context()
	k := randomKey()
	onA := openRacing(t, srv.URL, k)
	a := NewTieredSessions(session.NewMemoryStore(100, nil), NewSessions(onA))
	b := NewTieredSessions(session.NewMemoryStore(100, nil), NewSessions(openRacing(t, srv.URL, k)))
	start := time.Now()
	signIn := func(i int) string {
		s := session.Session{ID: fmt.Sprint("s", i), UserKey: raceUser, CreatedAt: start.Add(time.Duration(i) * time.Second)}
		if err := a.Put(ctx, s, time.Hour); err != nil {
			t.Fatal(err)
		}
		return s.ID
	}
	oldest := signIn(0)
	if _, ok, err := b.Get(ctx, oldest); !ok || err != nil { // now in B's L1
		t.Fatalf("B does not find the session: %v, %v", ok, err)
	}
	for i := 1; i <= session.MaxSessionsPerUser; i++ {
		signIn(i)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, ok, _ := b.Get(ctx, oldest); !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("5 s after the user's sign-ins beyond the bound on A, B still holds the oldest session")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, ok, _ := b.Get(ctx, "s1"); !ok {
		t.Fatal("the second oldest session ended too")
	}
	if n := onA.rdb.SCard(ctx, NewSessions(onA).indexName(raceUser)(0)).Val(); n != session.MaxSessionsPerUser {
		t.Fatalf("the user's index lists %d sessions, want %d", n, session.MaxSessionsPerUser)
	}
}

// Sessions that ended by a logout stay listed in the user's index until a sign-in finds it over the bound: then
// they are taken out, and no session that lives is ended for them.
func TestPerUserBoundForgetsEndedSessionsFirst(t *testing.T) {
	srv := testenv.StartRedis(t)
	ctx := t.Context()
	c := openRacing(t, srv.URL, randomKey())
	s := NewSessions(c)
	put := func(id string) {
		if err := s.Put(ctx, session.Session{ID: id, UserKey: raceUser, CreatedAt: time.Now()}, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 10 {
		put(fmt.Sprint("ended", i))
		if err := s.Delete(ctx, fmt.Sprint("ended", i)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range session.MaxSessionsPerUser {
		put(fmt.Sprint("live", i))
	}
	for i := range session.MaxSessionsPerUser {
		if _, ok, err := s.Get(ctx, fmt.Sprint("live", i)); !ok || err != nil {
			t.Fatalf("live%d ended (%v): logged-out sessions counted against the bound", i, err)
		}
	}
	if n := c.rdb.SCard(ctx, s.indexName(raceUser)(0)).Val(); n != int64(session.MaxSessionsPerUser) {
		t.Fatalf("the user's index lists %d sessions, want the %d that live", n, session.MaxSessionsPerUser)
	}
}
