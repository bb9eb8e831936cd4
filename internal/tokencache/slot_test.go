package tokencache

import (
	"context"
	"testing"
	"time"
)

// TestSlotCollisionIsAMiss: entries are found by a hash of their key; should two keys share it, the one whose
// entry is not in the slot gets a miss, never the other user's token, and its own Set takes the slot back.
func TestSlotCollisionIsAMiss(t *testing.T) {
	ctx := context.Background()
	m := NewMemory(10, 0, nil)
	alice := Key{User: "alice.tid", Scopes: "s"}
	bob := Key{User: "bob.tid", Scopes: "s"}
	exp := time.Now().Add(time.Hour)
	// Bob's entry where Alice's key leads, as a collision would put it.
	m.entries.Add(m.slotOf(alice), slot{key: bob, token: Token{AccessToken: "bob's", ExpiresOn: exp}.withHeader()}, exp)
	if tok, ok, _ := m.Get(ctx, alice); ok {
		t.Fatalf("Alice got %q from a slot holding Bob's entry", tok.AccessToken)
	}
	if err := m.Set(ctx, alice, Token{AccessToken: "alice's", ExpiresOn: exp}); err != nil {
		t.Fatal(err)
	}
	if tok, ok, _ := m.Get(ctx, alice); !ok || tok.AccessToken != "alice's" {
		t.Fatalf("after Set, Alice got %q, %v; want her own token", tok.AccessToken, ok)
	}
}
