package tokencache_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/tokeninjector/caddy-token-injector/internal/dev/testenv"
	"github.com/tokeninjector/caddy-token-injector/internal/tokencache"
	"github.com/tokeninjector/caddy-token-injector/internal/tokencache/tokencachetest"
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
		if got := tokencache.NormalizeScopes(tt.in); got != tt.want {
			t.Errorf("NormalizeScopes(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func newMemory(_ *testing.T, cfg tokencachetest.Config) (tokencache.Cache, tokencachetest.Clock) {
	clock := testenv.NewClock(time.Time{})
	return tokencache.NewMemory(cfg.MaxEntries, cfg.Margin, clock.Now), clock
}

func TestMemory(t *testing.T) {
	tokencachetest.RunCacheTests(t, newMemory, tokencachetest.Options{Bounded: true})
}

func key(i int) tokencache.Key {
	return tokencache.Key{User: tokencache.UserKey(fmt.Sprint(i), "tid"), Scopes: "s"}
}

// TestMemoryResize is a reload that changes cache_max_entries: what fits stays, the most recently used first.
func TestMemoryResize(t *testing.T) {
	tests := []struct {
		name          string
		from, to      int
		fill, wantLen int
	}{
		{"grow keeps everything", 100, 1000, 100, 100},
		{"same size keeps everything", 100, 100, 100, 100},
		{"shrink keeps the most recent", 100, 10, 100, 10},
		{"many shards to one", 20_000, 50, 20_000, 50},
		{"one shard to many", 200, 50_000, 200, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := testenv.NewClock(time.Time{})
			m := tokencache.NewMemory(tt.from, 0, clock.Now)
			ctx := t.Context()
			exp := clock.Now().Add(time.Hour)
			for i := range tt.fill {
				_ = m.Set(ctx, key(i), tokencache.Token{AccessToken: fmt.Sprint(i), ExpiresOn: exp})
				_ = m.SetAccount(ctx, key(i).User, tokencache.Account{ExpiresOn: exp})
			}
			m.Resize(tt.to)
			if m.Len() != tt.wantLen {
				t.Fatalf("Len = %d, want %d", m.Len(), tt.wantLen)
			}
			last := key(tt.fill - 1)
			if _, ok, _ := m.Get(ctx, last); !ok && tt.from <= 256 {
				t.Fatal("the most recently used token was evicted")
			}
			for i := range 2 * tt.to { // the new bound holds for tokens and accounts stored after
				_ = m.Set(ctx, key(tt.fill+i), tokencache.Token{AccessToken: "x", ExpiresOn: exp})
				_ = m.SetAccount(ctx, key(tt.fill+i).User, tokencache.Account{ExpiresOn: exp})
			}
			if m.Len() > tt.to {
				t.Fatalf("Len = %d, over the new bound %d", m.Len(), tt.to)
			}
			accounts := 0
			for i := range tt.fill + 2*tt.to {
				if _, ok, _ := m.GetAccount(ctx, key(i).User); ok {
					accounts++
				}
			}
			if accounts > tt.to {
				t.Fatalf("%d accounts held, over the new bound %d", accounts, tt.to)
			}
		})
	}
}

// TestMemorySetMargin is a reload that changes expiry_margin: it applies to tokens stored after.
func TestMemorySetMargin(t *testing.T) {
	clock := testenv.NewClock(time.Time{})
	m := tokencache.NewMemory(10, time.Minute, clock.Now)
	ctx := t.Context()
	exp := clock.Now().Add(10 * time.Minute)
	before, after := key(1), key(2)
	_ = m.Set(ctx, before, tokencache.Token{AccessToken: "before", ExpiresOn: exp})
	m.SetMargin(5 * time.Minute)
	_ = m.Set(ctx, after, tokencache.Token{AccessToken: "after", ExpiresOn: exp})

	clock.Advance(6 * time.Minute) // within the new margin, outside the old one
	if _, ok, _ := m.Get(ctx, after); ok {
		t.Fatal("a token stored after SetMargin ignored the new margin")
	}
	if _, ok, _ := m.Get(ctx, before); !ok {
		t.Fatal("a token stored before SetMargin was dropped by the new margin")
	}
	clock.Advance(3 * time.Minute) // within the old margin
	if _, ok, _ := m.Get(ctx, before); ok {
		t.Fatal("a token outlived the margin it was stored with")
	}
}
