package tokencachetest

import (
	"testing"
	"time"

	"github.com/tokeninjector/caddy-token-injector/internal/tokencache"
)

// RunMemoTests checks a store whose hits a tokencache.Memo remembers: the memo serves the entry's token without a
// lookup while the store would still serve it, and nothing once the store would not. A memo that outlived a
// sign-out, a CAE eviction (the challenged token replaced), a flush or an expiry would forward a token the proxy
// meant to stop forwarding.
func RunMemoTests(t *testing.T, newCache NewCache) {
	k := tokencache.Key{User: userA, Scopes: scopesX}
	tests := []struct {
		name    string
		end     func(t *testing.T, c tokencache.Cache, clock Clock) // nil: the entry stays
		want    string                                              // what the memo serves then; "" nothing
		another tokencache.Key                                      // asked of the memo instead of k
	}{
		{name: "a hit is remembered", want: "first"},
		{name: "for its key alone", another: tokencache.Key{User: userA, Scopes: scopesY}},
		{name: "nor another user's", another: tokencache.Key{User: userB, Scopes: scopesX}},
		{name: "nor another auth context's", another: tokencache.Key{User: userA, Context: "mfa", Scopes: scopesX}},
		{name: "sign-out ends it", end: func(t *testing.T, c tokencache.Cache, _ Clock) {
			if err := c.DeleteUser(t.Context(), userA); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "another user's sign-out does not", want: "first", end: func(t *testing.T, c tokencache.Cache, _ Clock) {
			if err := c.DeleteUser(t.Context(), userB); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "a replacing token ends it (renewal, CAE)", end: func(t *testing.T, c tokencache.Cache, clock Clock) {
			mustSet(t, c, k, token("second", clock.Now().Add(time.Hour)))
		}},
		{name: "a flush ends it", end: func(t *testing.T, c tokencache.Cache, _ Clock) {
			if _, err := c.(tokencache.Flusher).Flush(t.Context()); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "it ends with the entry, margin before expiry", end: func(_ *testing.T, _ tokencache.Cache, clock Clock) {
			clock.Advance(time.Hour - time.Minute) // the suite's margin is 5 minutes
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, clock := newCache(t, Config{MaxEntries: 100, Margin: 5 * time.Minute})
			m, ok := c.(tokencache.Memoizing)
			if !ok {
				t.Fatalf("%T does not implement tokencache.Memoizing", c)
			}
			mustSet(t, c, k, token("first", clock.Now().Add(time.Hour)))
			mustSet(t, c, tokencache.Key{User: userB, Scopes: scopesX}, token("b's", clock.Now().Add(time.Hour)))
			var memo tokencache.Memo
			if got, ok, err := m.GetMemo(t.Context(), k, &memo); err != nil || !ok || got.AccessToken != "first" {
				t.Fatalf("GetMemo = %q, %v, %v", got.AccessToken, ok, err)
			}
			if tt.end != nil {
				tt.end(t, c, clock)
			}
			ask := k
			if tt.another != (tokencache.Key{}) {
				ask = tt.another
			}
			got, ok := memo.Token(ask, clock.Now())
			if ok != (tt.want != "") || got.AccessToken != tt.want {
				t.Fatalf("the memo serves %q (%v), want %q", got.AccessToken, ok, tt.want)
			}
			if ok && got.AuthorizationHeader() != "Bearer "+tt.want {
				t.Fatalf("the memo's header is %q", got.AuthorizationHeader())
			}
		})
	}
	t.Run("two routes' keys are both remembered, a third takes the second place", func(t *testing.T) {
		c, clock := newCache(t, Config{MaxEntries: 100})
		keys := []tokencache.Key{k, {User: userA, Scopes: scopesY}, {User: userA, Scopes: "third"}}
		var memo tokencache.Memo
		serve := func(k tokencache.Key) {
			if _, ok, err := c.(tokencache.Memoizing).GetMemo(t.Context(), k, &memo); !ok || err != nil {
				t.Fatalf("GetMemo(%v) = %v, %v", k, ok, err)
			}
		}
		for _, key := range keys {
			mustSet(t, c, key, token(key.Scopes, clock.Now().Add(time.Hour)))
		}
		serve(keys[0])
		serve(keys[1])
		for _, key := range keys[:2] {
			if got, ok := memo.Token(key, clock.Now()); !ok || got.AccessToken != key.Scopes {
				t.Fatalf("the memo serves %q (%v) for %s, want its own token", got.AccessToken, ok, key.Scopes)
			}
		}
		serve(keys[2])
		if _, ok := memo.Token(keys[0], clock.Now()); !ok {
			t.Fatal("the third key took the first place")
		}
		if got, ok := memo.Token(keys[2], clock.Now()); !ok || got.AccessToken != "third" {
			t.Fatalf("the third key is not remembered: %q %v", got.AccessToken, ok)
		}
		if _, ok := memo.Token(keys[1], clock.Now()); ok {
			t.Fatal("the second key is still served after the third took its place")
		}
	})
	t.Run("a miss remembers nothing", func(t *testing.T) {
		c, clock := newCache(t, Config{MaxEntries: 100})
		var memo tokencache.Memo
		if _, ok, _ := c.(tokencache.Memoizing).GetMemo(t.Context(), k, &memo); ok {
			t.Fatal("a hit in an empty store")
		}
		if _, ok := memo.Token(k, clock.Now()); ok {
			t.Fatal("the memo of a miss serves a token")
		}
		var none *tokencache.Memo // a request without a memo
		if _, ok := none.Token(k, clock.Now()); ok {
			t.Fatal("a nil memo serves a token")
		}
	})
}
