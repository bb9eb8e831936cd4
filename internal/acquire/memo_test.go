package acquire

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokeninjector/caddy-token-injector/internal/tokencache"
)

// lookupCounting is Memory counting the lookups the engine makes of it.
type lookupCounting struct {
	*tokencache.Memory
	lookups atomic.Int64
}

func (c *lookupCounting) Get(ctx context.Context, k tokencache.Key) (tokencache.Token, bool, error) {
	c.lookups.Add(1)
	return c.Memory.Get(ctx, k)
}

func (c *lookupCounting) GetMemo(ctx context.Context, k tokencache.Key, m *tokencache.Memo) (tokencache.Token, bool, error) {
	c.lookups.Add(1)
	return c.Memory.GetMemo(ctx, k, m)
}

func newMemoEngine(t *testing.T) (*Engine, *countingProvider, *lookupCounting, func(time.Duration), Request) {
	e, p, clock := newTestEngine(t)
	cache := &lookupCounting{Memory: tokencache.NewMemory(100, time.Minute, clock.Now)}
	e = New(cache, p, Config{Now: clock.Now, CallTimeout: 2 * time.Second})
	t.Cleanup(e.Close)
	req := alice
	req.Memo = new(tokencache.Memo)
	return e, p, cache, clock.Advance, req
}

// A caller's memo serves its requests without a cache lookup, and what ends the entry ends the memo: the next
// request gets what a lookup gets.
func TestMemoServesWithoutALookupUntilTheEntryEnds(t *testing.T) {
	e, p, cache, _, req := newMemoEngine(t)
	ctx := context.Background()
	first, _ := e.Token(ctx, req) // a miss: On-Behalf-Of, cached
	if _, err := e.Token(ctx, req); err != nil {
		t.Fatal(err) // a lookup, remembered
	}
	before := cache.lookups.Load()
	for range 10 {
		if tok, err := e.Token(ctx, req); err != nil || tok.AccessToken != first.AccessToken {
			t.Fatalf("from the memo: %q %v, want %q", tok.AccessToken, err, first.AccessToken)
		}
	}
	if n := cache.lookups.Load() - before; n != 0 || p.calls.Load() != 1 {
		t.Fatalf("%d lookups and %d provider calls for 10 hits, want 0 and the first", n, p.calls.Load())
	}
	if e.Stats().CacheHits != 11 {
		t.Fatalf("%d cache hits counted, want 11: a memo hit is a cache hit", e.Stats().CacheHits)
	}

	// An upstream's claims challenge (CAE) is answered by the identity provider, and its token replaces the
	// memo's: the revoked token is never served again.
	challenged := req
	challenged.Claims = `{"access_token":{"nbf":{"essential":true,"value":"1"}}}`
	fresh, err := e.Token(ctx, challenged)
	if err != nil || p.calls.Load() != 2 {
		t.Fatalf("with claims: %v, %d calls, want a second call", err, p.calls.Load())
	}
	if tok, _ := e.Token(ctx, req); tok.AccessToken != fresh.AccessToken {
		t.Fatalf("after the challenge the memo served %q, want the claims token %q", tok.AccessToken, fresh.AccessToken)
	}

	// A sign-out ends it too.
	if err := e.SignOut(ctx, req.Key.User); err != nil {
		t.Fatal(err)
	}
	if tok, _ := e.Token(ctx, req); tok.AccessToken == fresh.AccessToken || p.calls.Load() != 3 {
		t.Fatalf("after a sign-out: %q with %d calls, want a new token from a third call", tok.AccessToken, p.calls.Load())
	}
}

// A token due for renewal is renewed in the background when the memo serves it too, and the renewed token, which
// replaced the entry, is what the memo's next request gets.
func TestMemoHitRenewsInBackground(t *testing.T) {
	e, p, cache, advance, req := newMemoEngine(t)
	ctx := context.Background()
	first, _ := e.Token(ctx, req)
	_, _ = e.Token(ctx, req)  // remembered
	advance(56 * time.Minute) // past RefreshOn (expiry - 5m), still usable
	if tok, _ := e.Token(ctx, req); tok.AccessToken != first.AccessToken {
		t.Fatalf("a token due for renewal must be served at once, got %q", tok.AccessToken)
	}
	waitFor(t, func() bool {
		tok, _, _ := cache.Memory.Get(ctx, req.Key)
		return tok.AccessToken != first.AccessToken
	})
	if tok, _ := e.Token(ctx, req); tok.AccessToken == first.AccessToken || p.calls.Load() != 2 {
		t.Fatalf("after the renewal the memo served %q (%d calls), want the renewed token", tok.AccessToken, p.calls.Load())
	}
}

// revokingCache is Memory that notes which keys were stored as replacing a revoked token.
type revokingCache struct {
	*tokencache.Memory
	revoked []tokencache.Key
}

func (c *revokingCache) SetRevoked(ctx context.Context, k tokencache.Key, t tokencache.Token) error {
	c.revoked = append(c.revoked, k)
	return c.Memory.Set(ctx, k, t)
}

// A token that answers a claims challenge is stored as replacing a revoked one, so a shared tier tells the other
// replicas; an ordinary fetch is not.
func TestClaimsAnswerIsStoredAsRevokingTheCachedToken(t *testing.T) {
	e, p, clock := newTestEngine(t)
	cache := &revokingCache{Memory: tokencache.NewMemory(100, time.Minute, clock.Now)}
	e = New(cache, p, Config{Now: clock.Now, CallTimeout: 2 * time.Second})
	t.Cleanup(e.Close)
	ctx := context.Background()
	if _, err := e.Token(ctx, alice); err != nil || len(cache.revoked) != 0 {
		t.Fatalf("a first fetch: %v, %d revocations, want none", err, len(cache.revoked))
	}
	challenged := alice
	challenged.Claims = `{"access_token":{"nbf":{"essential":true,"value":"1"}}}`
	fresh, err := e.Token(ctx, challenged)
	if err != nil || len(cache.revoked) != 1 || cache.revoked[0] != alice.Key {
		t.Fatalf("the claims answer: %v, revocations %v, want alice's key", err, cache.revoked)
	}
	if tok, _ := e.Token(ctx, alice); tok.AccessToken != fresh.AccessToken {
		t.Fatalf("after the answer the cache serves %q, want %q", tok.AccessToken, fresh.AccessToken)
	}
}

// Memo hits racing a sign-out: once SignOut has returned, no request gets the signed-out token, from a memo or
// the cache, however many were being served from the memo while it ran.
func TestNoMemoHitAfterASignOutReturns(t *testing.T) {
	e, _, _, _, req := newMemoEngine(t)
	ctx := context.Background()
	old, _ := e.Token(ctx, req)
	_, _ = e.Token(ctx, req) // remembered
	var signedOut atomic.Bool
	stop := make(chan struct{})
	errs := make(chan string, 8)
	for range 8 {
		go func() {
			for {
				select {
				case <-stop:
					errs <- ""
					return
				default:
				}
				after := signedOut.Load() // read before the request: the sign-out had returned
				if tok, err := e.Token(ctx, req); err == nil && after && tok.AccessToken == old.AccessToken {
					errs <- "a request begun after the sign-out got the signed-out token"
					return
				}
			}
		}()
	}
	time.Sleep(20 * time.Millisecond)
	if err := e.SignOut(ctx, req.Key.User); err != nil {
		t.Fatal(err)
	}
	signedOut.Store(true)
	time.Sleep(20 * time.Millisecond)
	close(stop)
	for range 8 {
		if msg := <-errs; msg != "" {
			t.Fatal(msg)
		}
	}
}
