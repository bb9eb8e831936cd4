package session

import (
	"fmt"
	"testing"
	"time"
)

func TestMemoryStoreBound(t *testing.T) {
	c := newClock()
	st := NewMemoryStore(10, c.Now)
	ctx := t.Context()
	for i := range 25 {
		if err := st.Put(ctx, Session{ID: fmt.Sprint(i), UserKey: "u"}, time.Hour); err != nil {
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

func TestMemoryStore(t *testing.T) {
	c := newClock()
	st := NewMemoryStore(0, c.Now) // default bound
	ctx := t.Context()
	if err := st.Put(ctx, Session{ID: "a", UserKey: "alice"}, 0); err != ErrBadTTL {
		t.Fatalf("zero ttl: %v", err)
	}
	if err := st.Put(ctx, Session{UserKey: "alice"}, time.Hour); err == nil {
		t.Fatal("a session without ID was stored")
	}
	_ = st.Put(ctx, Session{ID: "a", UserKey: "alice"}, time.Minute)
	_ = st.Put(ctx, Session{ID: "b", UserKey: "alice"}, time.Hour)
	_ = st.Put(ctx, Session{ID: "c", UserKey: "bob"}, time.Hour)
	_ = st.Put(ctx, Session{ID: "d"}, time.Hour)
	c.Advance(2 * time.Minute)
	if _, ok, _ := st.Get(ctx, "a"); ok {
		t.Fatal("a session outlived its ttl")
	}
	if n, _ := st.DeleteUser(ctx, ""); n != 0 {
		t.Fatal("DeleteUser(\"\") deleted sessions")
	}
	if n, _ := st.DeleteUser(ctx, "alice"); n != 1 {
		t.Fatalf("DeleteUser(alice) = %d, want 1", n)
	}
	if _, ok, _ := st.Get(ctx, "c"); !ok {
		t.Fatal("DeleteUser removed another user's session")
	}
	_ = st.Delete(ctx, "c")
	_ = st.Delete(ctx, "missing")
	if _, ok, _ := st.Get(ctx, "c"); ok {
		t.Fatal("Delete did not delete")
	}
}
