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

func TestMemoryMemo(t *testing.T) { tokencachetest.RunMemoTests(t, newMemory) }

func key(i int) tokencache.Key {
	return tokencache.Key{User: tokencache.UserKey(fmt.Sprint(i), "tid"), Scopes: "s"}
}

// TestMemoryResize is a reload that changes cache_max_entries: what fits stays, the most recently used first.
// Resize is lru's SetCapacity (tested there, shards and all) applied to the tokens and the accounts alike.
func TestMemoryResize(t *testing.T) {
	t.Run("shrink keeps the most recent", func(t *testing.T) { resizeAndCheck(t, 100, 10, 10) })
	t.Run("grow keeps everything", func(t *testing.T) { resizeAndCheck(t, 100, 1000, 100) })
}

// resizeAndCheck fills a cache of capacity from, resizes it to to and checks that wantLen tokens stay, the most
// recent among them, and that the new bound holds for the tokens and accounts stored after.
func resizeAndCheck(t *testing.T, from, to, wantLen int) {
	clock := testenv.NewClock(time.Time{})
	m := tokencache.NewMemory(from, 0, clock.Now)
	ctx := t.Context()
	exp := clock.Now().Add(time.Hour)
	fill := func(first, n int) {
		for i := first; i < first+n; i++ {
			_ = m.Set(ctx, key(i), tokencache.Token{AccessToken: fmt.Sprint(i), ExpiresOn: exp})
			_ = m.SetAccount(ctx, key(i).User, tokencache.Account{ExpiresOn: exp})
		}
	}
	fill(0, from)
	m.Resize(to)
	if m.Len() != wantLen {
		t.Fatalf("Len = %d, want %d", m.Len(), wantLen)
	}
	if _, ok, _ := m.Get(ctx, key(from-1)); !ok {
		t.Fatal("the most recently used token was evicted")
	}
	fill(from, 2*to)
	accounts := 0
	for i := range from + 2*to {
		if _, ok, _ := m.GetAccount(ctx, key(i).User); ok {
			accounts++
		}
	}
	if m.Len() > to || accounts > to {
		t.Fatalf("%d tokens and %d accounts held, over the new bound %d", m.Len(), accounts, to)
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

// An entry served only from a memo is as recently used as one Get serves: a full cache evicts the others first.
func TestMemoryKeepsWhatMemosServe(t *testing.T) {
	m, clock, set := twoEntries(t)
	ctx := t.Context()
	var memo tokencache.Memo
	if _, ok, _ := m.GetMemo(ctx, key(1), &memo); !ok {
		t.Fatal("no entry 1")
	}
	set(3) // evicts 2: 1 was just read
	if _, ok := memo.Token(key(1), clock.Now()); !ok {
		t.Fatal("the memo lost entry 1")
	}
	set(4) // 1 was served from the memo since: 3 goes
	if _, ok := memo.Token(key(1), clock.Now()); !ok {
		t.Fatal("the entry the memo serves was evicted before one nobody used")
	}
	if _, ok, _ := m.Get(ctx, key(3)); ok {
		t.Fatal("entry 3, unused, was kept")
	}
}

// Every caller token of one user has its own memo of the user's entry (devices, renewed tokens): each serves the
// entry, a use through any of them keeps it from eviction, and its end reaches every one, however many there are.
func TestMemoryEndsEveryMemoOfAnEntry(t *testing.T) {
	m, clock, set := twoEntries(t)
	ctx := t.Context()
	memos := make([]tokencache.Memo, 20)
	for i := range memos {
		if got, ok, _ := m.GetMemo(ctx, key(1), &memos[i]); !ok || got.AccessToken != "1" {
			t.Fatalf("caller %d: entry 1 not served (%q)", i, got.AccessToken)
		}
	}
	set(3) // evicts 2: 1 was just read
	if _, ok := memos[2].Token(key(1), clock.Now()); !ok {
		t.Fatal("an older caller's memo does not serve entry 1")
	}
	set(4) // 1 was served from a memo since: 3 goes
	if _, ok, _ := m.Get(ctx, key(3)); ok {
		t.Fatal("entry 3, unused, was kept over the entry an older caller's memo serves")
	}
	if err := m.DeleteUser(ctx, key(1).User); err != nil {
		t.Fatal(err)
	}
	for i := range memos {
		if got, ok := memos[i].Token(key(1), clock.Now()); ok {
			t.Fatalf("caller %d's memo serves %q after the user signed out", i, got.AccessToken)
		}
	}
}

// twoEntries returns a full cache of two, holding entries 1 and 2, and set, which adds entry i.
func twoEntries(t *testing.T) (*tokencache.Memory, *testenv.Clock, func(i int)) {
	clock := testenv.NewClock(time.Time{})
	m := tokencache.NewMemory(2, 0, clock.Now)
	set := func(i int) {
		if err := m.Set(t.Context(), key(i), tokencache.Token{AccessToken: fmt.Sprint(i), ExpiresOn: clock.Now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	set(1)
	set(2)
	return m, clock, set
}
