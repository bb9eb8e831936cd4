package tokencache

import (
	"context"
	"testing"
	"time"
)

func TestNormalizeScopes(t *testing.T) {
	tests := []struct {
		in   []string
		want string
	}{
		{[]string{"https://graph.microsoft.com/User.Read"}, "https://graph.microsoft.com/user.read"},
		{[]string{"b", "A", "a", " b "}, "a b"},
		{[]string{"", "  "}, ""},
		{[]string{"api://x/.default"}, "api://x/.default"},
	}
	for _, tt := range tests {
		if got := NormalizeScopes(tt.in); got != tt.want {
			t.Errorf("NormalizeScopes(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestMemoryDropsTokensWithinTheMargin(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	m := NewMemory(10, time.Minute, func() time.Time { return now })
	ctx := context.Background()
	k := Key{User: "oid.tid", Scopes: "s"}
	m.Set(ctx, k, Token{AccessToken: "t", ExpiresOn: now.Add(10 * time.Minute)})
	if _, ok, _ := m.Get(ctx, k); !ok {
		t.Fatal("fresh token missing")
	}
	now = now.Add(9 * time.Minute)
	if _, ok, _ := m.Get(ctx, k); ok {
		t.Fatal("a token within the margin of expiry was returned")
	}
}

func TestMemoryDeleteUserForgetsTokensAndAccount(t *testing.T) {
	m := NewMemory(100, 0, nil)
	ctx := context.Background()
	exp := time.Now().Add(time.Hour)
	for _, u := range []string{"a.t", "b.t"} {
		for _, s := range []string{"s1", "s2"} {
			m.Set(ctx, Key{User: u, Scopes: s}, Token{AccessToken: u + s, ExpiresOn: exp})
		}
		m.SetAccount(ctx, u, Account{MSAL: []byte(u), ExpiresOn: exp})
	}
	m.DeleteUser(ctx, "a.t")
	if _, ok, _ := m.Get(ctx, Key{User: "a.t", Scopes: "s1"}); ok {
		t.Fatal("a's token survived")
	}
	if _, ok, _ := m.GetAccount(ctx, "a.t"); ok {
		t.Fatal("a's account survived")
	}
	if _, ok, _ := m.Get(ctx, Key{User: "b.t", Scopes: "s2"}); !ok {
		t.Fatal("b's token was deleted")
	}
	if m.Len() != 2 {
		t.Fatalf("len %d", m.Len())
	}
}

func TestMemoryCapHolds(t *testing.T) {
	m := NewMemory(1000, 0, nil)
	ctx := context.Background()
	exp := time.Now().Add(time.Hour)
	for i := range 5000 {
		m.Set(ctx, Key{User: string(rune('a'+i%26)) + time.Duration(i).String(), Scopes: "s"}, Token{AccessToken: "x", ExpiresOn: exp})
	}
	if m.Len() > m.Capacity() || m.Capacity() != 1000 {
		t.Fatalf("len %d, capacity %d", m.Len(), m.Capacity())
	}
}
