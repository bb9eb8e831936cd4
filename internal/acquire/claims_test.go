package acquire

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/tokeninjector/caddy-token-injector/internal/tokencache"
)

// AppToken issues the app's own tokens, counted with the others.
func (p *countingProvider) AppToken(_ context.Context, g Grant) (tokencache.Token, error) {
	n := p.calls.Add(1)
	p.record(g)
	time.Sleep(p.delay)
	return tokencache.Token{AccessToken: "app/" + string(rune('0'+n)), ExpiresOn: p.clock().Add(p.lifetime)}, nil
}

const challenge = `{"access_token":{"nbf":{"essential":true,"value":"1700000000"}}}`

func TestClaimsSkipTheCacheAndReplaceTheEntry(t *testing.T) {
	e, p, _ := newTestEngine(t)
	ctx := context.Background()
	first, err := e.Token(ctx, alice)
	if err != nil {
		t.Fatal(err)
	}
	withClaims := alice
	withClaims.Claims = challenge
	fresh, err := e.Token(ctx, withClaims)
	if err != nil {
		t.Fatal(err)
	}
	if fresh.AccessToken == first.AccessToken || p.calls.Load() != 2 {
		t.Fatalf("a request with claims was answered from the cache (%d calls)", p.calls.Load())
	}
	if got := p.grants[1].Claims; got != challenge {
		t.Fatalf("the provider got claims %q, want the challenge", got)
	}
	after, err := e.Token(ctx, alice)
	if err != nil || after.AccessToken != fresh.AccessToken || p.calls.Load() != 2 {
		t.Fatalf("the token got with claims did not replace the cached one: %q, %d calls", after.AccessToken, p.calls.Load())
	}
}

func TestConcurrentChallengesOfOneUserMakeOneCall(t *testing.T) {
	e, p, _ := newTestEngine(t)
	p.delay = 50 * time.Millisecond
	req := alice
	req.Claims = challenge
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if _, err := e.Token(context.Background(), req); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := p.calls.Load(); n != 1 {
		t.Fatalf("%d provider calls for 20 concurrent requests with one challenge", n)
	}
}

func TestAppOnlyIsOneGrantPerTenantAndScopes(t *testing.T) {
	e, p, clock := newTestEngine(t)
	p.delay = 20 * time.Millisecond
	app := func(tenant string) Request {
		return Request{Key: tokencache.Key{User: tokencache.AppUser("client", tenant), Scopes: "s"}, Scopes: []string{"s"},
			AppOnly: true, Tenant: tenant}
	}
	var wg sync.WaitGroup
	for range 15 {
		wg.Go(func() {
			if tok, err := e.Token(context.Background(), app("t1")); err != nil || tok.AccessToken != "app/1" {
				t.Errorf("got %q, %v", tok.AccessToken, err)
			}
		})
	}
	wg.Wait()
	if n := p.calls.Load(); n != 1 {
		t.Fatalf("%d client credentials grants for 15 concurrent first requests", n)
	}
	if _, err := e.Token(context.Background(), app("t2")); err != nil || p.calls.Load() != 2 || p.grants[1].Tenant != "t2" {
		t.Fatalf("another tenant must get its own token from its own tenant: %d calls", p.calls.Load())
	}
	clock.Advance(56 * time.Minute) // past RefreshOn: served at once, renewed in the background
	if tok, err := e.Token(context.Background(), app("t1")); err != nil || tok.AccessToken != "app/1" {
		t.Fatalf("got %q, %v", tok.AccessToken, err)
	}
	waitFor(t, func() bool { return p.calls.Load() == 3 })
	if e.Stats().BackgroundRefreshes != 1 {
		t.Fatal("the app token was not renewed in the background")
	}
}
