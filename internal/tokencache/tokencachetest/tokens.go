package tokencachetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/tokeninjector/caddy-token-injector/internal/tokencache"
)

// NewTokenStore returns an empty token store configured by cfg, reading time from the returned clock.
type NewTokenStore func(t *testing.T, cfg Config) (tokencache.TokenStore, Clock)

// RunTokenStoreTests is the conformance suite of a tokencache.TokenStore.
func RunTokenStoreTests(t *testing.T, newStore NewTokenStore, opts Options) {
	fresh := func(t *testing.T) (tokencache.TokenStore, Clock) { return newStore(t, Config{MaxEntries: 1000}) }
	t.Run("Miss", func(t *testing.T) {
		s, _ := fresh(t)
		wantToken(t, s, tokencache.Key{User: userA, Scopes: scopesX}, "")
	})
	t.Run("RoundTrip", func(t *testing.T) { testTokenRoundTrip(t, fresh) })
	t.Run("Overwrite", func(t *testing.T) {
		s, clock := fresh(t)
		k := tokencache.Key{User: userA, Scopes: scopesX}
		mustSet(t, s, k, token("first", clock.Now().Add(time.Hour)))
		mustSet(t, s, k, token("second", clock.Now().Add(2*time.Hour)))
		wantToken(t, s, k, "second")
	})
	t.Run("ExpiryWithMargin", func(t *testing.T) { testTokenExpiry(t, newStore) })
	t.Run("ScopeSetsAreDistinct", func(t *testing.T) {
		s, clock := fresh(t)
		exp := clock.Now().Add(time.Hour)
		mustSet(t, s, tokencache.Key{User: userA, Scopes: scopesX}, token("x", exp))
		mustSet(t, s, tokencache.Key{User: userA, Scopes: scopesY}, token("y", exp))
		wantToken(t, s, tokencache.Key{User: userA, Scopes: scopesX}, "x")
		wantToken(t, s, tokencache.Key{User: userA, Scopes: scopesY}, "y")
		wantToken(t, s, tokencache.Key{User: userB, Scopes: scopesX}, "")
	})
	t.Run("DeleteUser", func(t *testing.T) { testTokenDeleteUser(t, fresh) })
	if opts.Bounded {
		t.Run("CapacityEvictsLeastRecentlyUsed", func(t *testing.T) { testTokenCapacity(t, newStore) })
	}
	t.Run("ConcurrentUse", func(t *testing.T) {
		s, clock := fresh(t)
		ctx := t.Context()
		exp := clock.Now().Add(time.Hour)
		concurrently(t, func(g, i int) error {
			k := tokencache.Key{User: fmt.Sprintf("user-%d.tenant", i%20), Scopes: []string{scopesX, scopesY}[g%2]}
			switch i % 10 {
			case 9:
				return s.DeleteUser(ctx, k.User)
			case 0, 3, 6:
				return s.Set(ctx, k, token(k.User, exp))
			}
			got, ok, err := s.Get(ctx, k)
			if err == nil && ok && got.AccessToken != k.User {
				err = fmt.Errorf("Get(%v) = %q, another key's token", k, got.AccessToken)
			}
			s.Len()
			return err
		})
		mustSet(t, s, tokencache.Key{User: userA, Scopes: scopesX}, token("after", exp))
		wantToken(t, s, tokencache.Key{User: userA, Scopes: scopesX}, "after")
	})
}

func testTokenRoundTrip(t *testing.T, fresh func(*testing.T) (tokencache.TokenStore, Clock)) {
	s, clock := fresh(t)
	k := tokencache.Key{User: userA, Scopes: scopesX}
	want := token("eyJ0eXAi.payload.signature", clock.Now().Add(time.Hour))
	mustSet(t, s, k, want)
	got, ok, err := s.Get(t.Context(), k)
	if err != nil || !ok {
		t.Fatalf("Get = %v, %v", ok, err)
	}
	if got.AccessToken != want.AccessToken || !got.ExpiresOn.Equal(want.ExpiresOn) || !got.RefreshOn.Equal(want.RefreshOn) {
		t.Fatalf("got %q expiring %v refreshing %v, want %q %v %v", got.AccessToken, got.ExpiresOn, got.RefreshOn,
			want.AccessToken, want.ExpiresOn, want.RefreshOn)
	}
	if h := got.AuthorizationHeader(); h != "Bearer "+want.AccessToken {
		t.Fatalf("AuthorizationHeader = %q", h)
	}
}

func testTokenExpiry(t *testing.T, newStore NewTokenStore) {
	s, clock := newStore(t, Config{MaxEntries: 1000, Margin: time.Minute})
	k := tokencache.Key{User: userA, Scopes: scopesX}
	mustSet(t, s, k, token("t", clock.Now().Add(10*time.Minute)))
	clock.Advance(9*time.Minute - time.Second)
	wantToken(t, s, k, "t")
	clock.Advance(time.Second) // now within the margin of expiry
	wantToken(t, s, k, "")

	late := tokencache.Key{User: userB, Scopes: scopesX}
	mustSet(t, s, late, token("short", clock.Now().Add(30*time.Second))) // stored already within the margin
	wantToken(t, s, late, "")
}

func testTokenDeleteUser(t *testing.T, fresh func(*testing.T) (tokencache.TokenStore, Clock)) {
	s, clock := fresh(t)
	ctx := t.Context()
	exp := clock.Now().Add(time.Hour)
	for _, u := range []string{userA, userB} {
		for _, sc := range []string{scopesX, scopesY} {
			mustSet(t, s, tokencache.Key{User: u, Scopes: sc}, token(u, exp))
		}
	}
	if err := s.DeleteUser(ctx, ""); err != nil {
		t.Fatalf("DeleteUser(\"\"): %v", err)
	}
	for _, u := range []string{userA, userB} {
		wantToken(t, s, tokencache.Key{User: u, Scopes: scopesX}, u) // the empty user deleted nothing
	}
	if err := s.DeleteUser(ctx, userA); err != nil {
		t.Fatal(err)
	}
	for _, sc := range []string{scopesX, scopesY} {
		wantToken(t, s, tokencache.Key{User: userA, Scopes: sc}, "")
		wantToken(t, s, tokencache.Key{User: userB, Scopes: sc}, userB)
	}
	if err := s.DeleteUser(ctx, "unknown.tenant"); err != nil {
		t.Fatalf("DeleteUser of an unknown user: %v", err)
	}
}

func testTokenCapacity(t *testing.T, newStore NewTokenStore) {
	s, clock := newStore(t, Config{MaxEntries: 3})
	exp := clock.Now().Add(time.Hour)
	key := func(u string) tokencache.Key { return tokencache.Key{User: u, Scopes: scopesX} }
	for _, u := range []string{"a", "b", "c"} {
		mustSet(t, s, key(u), token(u, exp))
	}
	wantToken(t, s, key("a"), "a") // a is now the most recently used; b the least
	mustSet(t, s, key("d"), token("d", exp))
	wantToken(t, s, key("b"), "")
	for _, u := range []string{"a", "c", "d"} {
		wantToken(t, s, key(u), u)
	}
	for i := range 50 {
		mustSet(t, s, key(fmt.Sprint(i)), token("x", exp))
	}
	if n := s.Len(); n > 3 {
		t.Fatalf("Len = %d, over the bound of 3", n)
	}
}

func mustSet(t *testing.T, s tokencache.TokenStore, k tokencache.Key, tok tokencache.Token) {
	t.Helper()
	if err := s.Set(t.Context(), k, tok); err != nil {
		t.Fatalf("Set(%v): %v", k, err)
	}
}

// wantToken checks that Get(k) returns a token with access token want, or a miss when want is empty.
func wantToken(t *testing.T, s tokencache.TokenStore, k tokencache.Key, want string) {
	t.Helper()
	got, ok, err := s.Get(t.Context(), k)
	switch {
	case err != nil:
		t.Fatalf("Get(%v): %v", k, err)
	case want == "" && ok:
		t.Fatalf("Get(%v) = %q, want a miss", k, got.AccessToken)
	case want != "" && (!ok || got.AccessToken != want):
		t.Fatalf("Get(%v) = %q, %v, want %q", k, got.AccessToken, ok, want)
	}
}
