package session

import (
	"context"
	"testing"
	"time"
)

// TestStoreSlotCollision: sessions are found by a hash of their id; should two ids share it, the one whose session
// is not in the slot is unknown (never the other user's session), and deleting it leaves the other alone.
func TestStoreSlotCollision(t *testing.T) {
	ctx := context.Background()
	s := NewMemoryStore(10, nil).(*memoryStore)
	bob := Session{ID: "bob-session", UserKey: "bob.tid"}
	s.cache.Add(s.slot("alice-session"), bob, time.Now().Add(time.Hour)) // where Alice's id leads, as a collision would
	if got, ok, _ := s.Get(ctx, "alice-session"); ok {
		t.Fatalf("Alice's id found %q's session", got.UserKey)
	}
	if err := s.Delete(ctx, "alice-session"); err != nil {
		t.Fatal(err)
	}
	if v, ok := s.cache.Get(s.slot("alice-session"), time.Now()); !ok || v.ID != bob.ID {
		t.Fatal("deleting Alice's session removed the session in the slot, Bob's")
	}
}
