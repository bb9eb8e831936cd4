package tokencachetest

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tokeninjector/caddy-token-injector/internal/tokencache"
)

// NewAccountStore returns an empty account store configured by cfg, reading time from the returned clock.
type NewAccountStore func(t *testing.T, cfg Config) (tokencache.AccountStore, Clock)

// RunAccountStoreTests is the conformance suite of a tokencache.AccountStore.
func RunAccountStoreTests(t *testing.T, newStore NewAccountStore, opts Options) {
	fresh := func(t *testing.T) (tokencache.AccountStore, Clock) { return newStore(t, Config{MaxEntries: 1000}) }
	t.Run("Miss", func(t *testing.T) {
		s, _ := fresh(t)
		wantAccount(t, s, userA, "")
	})
	t.Run("RoundTrip", func(t *testing.T) {
		s, clock := fresh(t)
		want := account("msal-cache-json", clock.Now().Add(24*time.Hour))
		mustSetAccount(t, s, userA, want)
		got, ok, err := s.GetAccount(t.Context(), userA)
		if err != nil || !ok {
			t.Fatalf("GetAccount = %v, %v", ok, err)
		}
		if string(got.MSAL) != string(want.MSAL) || !slices.Equal(got.Scopes, want.Scopes) || !got.ExpiresOn.Equal(want.ExpiresOn) {
			t.Fatalf("got %+v, want %+v", got, want)
		}
	})
	t.Run("Overwrite", func(t *testing.T) {
		s, clock := fresh(t)
		mustSetAccount(t, s, userA, account("first", clock.Now().Add(time.Hour)))
		mustSetAccount(t, s, userA, account("second", clock.Now().Add(time.Hour)))
		wantAccount(t, s, userA, "second")
	})
	t.Run("Expiry", func(t *testing.T) {
		s, clock := fresh(t)
		mustSetAccount(t, s, userA, account("a", clock.Now().Add(time.Hour)))
		clock.Advance(time.Hour - time.Second)
		wantAccount(t, s, userA, "a")
		clock.Advance(time.Second)
		wantAccount(t, s, userA, "")
	})
	t.Run("DeleteUser", func(t *testing.T) { testAccountDeleteUser(t, fresh) })
	if opts.Bounded {
		t.Run("CapacityEvictsLeastRecentlyUsed", func(t *testing.T) { testAccountCapacity(t, newStore) })
	}
	t.Run("CompareAndSwap", func(t *testing.T) { testAccountSwap(t, fresh) })
	t.Run("ConcurrentUse", func(t *testing.T) {
		s, clock := fresh(t)
		ctx := t.Context()
		exp := clock.Now().Add(time.Hour)
		concurrently(t, func(_, i int) error {
			u := fmt.Sprintf("user-%d.tenant", i%20)
			switch i % 10 {
			case 9:
				return s.DeleteUser(ctx, u)
			case 0, 3, 6:
				return s.SetAccount(ctx, u, account(u, exp))
			}
			got, ok, err := s.GetAccount(ctx, u)
			if err == nil && ok && string(got.MSAL) != u {
				err = fmt.Errorf("GetAccount(%s) = %q, another user's account", u, got.MSAL)
			}
			return err
		})
		mustSetAccount(t, s, userA, account("after", exp))
		wantAccount(t, s, userA, "after")
	})
}

func testAccountDeleteUser(t *testing.T, fresh func(*testing.T) (tokencache.AccountStore, Clock)) {
	s, clock := fresh(t)
	ctx := t.Context()
	exp := clock.Now().Add(time.Hour)
	mustSetAccount(t, s, userA, account(userA, exp))
	mustSetAccount(t, s, userB, account(userB, exp))
	if err := s.DeleteUser(ctx, ""); err != nil {
		t.Fatalf("DeleteUser(\"\"): %v", err)
	}
	wantAccount(t, s, userA, userA)
	if err := s.DeleteUser(ctx, userA); err != nil {
		t.Fatal(err)
	}
	wantAccount(t, s, userA, "")
	wantAccount(t, s, userB, userB)
}

func testAccountCapacity(t *testing.T, newStore NewAccountStore) {
	s, clock := newStore(t, Config{MaxEntries: 3})
	exp := clock.Now().Add(time.Hour)
	for _, u := range []string{"a", "b", "c"} {
		mustSetAccount(t, s, u, account(u, exp))
	}
	wantAccount(t, s, "a", "a") // b is now the least recently used
	mustSetAccount(t, s, "d", account("d", exp))
	wantAccount(t, s, "b", "")
	for _, u := range []string{"a", "c", "d"} {
		wantAccount(t, s, u, u)
	}
}

func mustSetAccount(t *testing.T, s tokencache.AccountStore, user string, a tokencache.Account) {
	t.Helper()
	if err := s.SetAccount(t.Context(), user, a); err != nil {
		t.Fatalf("SetAccount(%s): %v", user, err)
	}
}

// wantAccount checks that GetAccount(user) returns an account whose MSAL cache is want, or a miss when want is empty.
func wantAccount(t *testing.T, s tokencache.AccountStore, user, want string) {
	t.Helper()
	got, ok, err := s.GetAccount(t.Context(), user)
	switch {
	case err != nil:
		t.Fatalf("GetAccount(%s): %v", user, err)
	case want == "" && ok:
		t.Fatalf("GetAccount(%s) = %q, want a miss", user, got.MSAL)
	case want != "" && (!ok || string(got.MSAL) != want):
		t.Fatalf("GetAccount(%s) = %q, %v, want %q", user, got.MSAL, ok, want)
	}
}

// testAccountSwap checks compare-and-set: a swap from the record that is there wins, one from an older record
// loses and leaves the newer, of many concurrent swaps from one record exactly one wins, and one after a sign-out
// stores nothing.
func testAccountSwap(t *testing.T, fresh func(*testing.T) (tokencache.AccountStore, Clock)) {
	s, clock := fresh(t)
	ctx := t.Context()
	exp := clock.Now().Add(time.Hour)
	first := account("rt-1", exp)
	mustSetAccount(t, s, userA, first)
	if ok, err := s.SwapAccount(ctx, userA, first, account("rt-2", exp)); err != nil || !ok {
		t.Fatalf("swap from the current record = %v, %v", ok, err)
	}
	if ok, err := s.SwapAccount(ctx, userA, first, account("rt-stale", exp)); err != nil || ok {
		t.Fatalf("swap from a spent record = %v, %v; want false", ok, err)
	}
	wantAccount(t, s, userA, "rt-2")
	var mu sync.Mutex
	wins := 0
	concurrently(t, func(g, i int) error {
		if i > 0 {
			return nil
		}
		ok, err := s.SwapAccount(ctx, userA, account("rt-2", exp), account(fmt.Sprint("rt-3-", g), exp))
		if ok {
			mu.Lock()
			wins++
			mu.Unlock()
		}
		return err
	})
	if wins != 1 {
		t.Fatalf("%d concurrent swaps from one record won, want 1", wins)
	}
	current, _, _ := s.GetAccount(ctx, userA)
	if err := s.DeleteUser(ctx, userA); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.SwapAccount(ctx, userA, current, account("rt-after-sign-out", exp)); err != nil || ok {
		t.Fatalf("swap after a sign-out = %v, %v; want false", ok, err)
	}
	wantAccount(t, s, userA, "")
}
