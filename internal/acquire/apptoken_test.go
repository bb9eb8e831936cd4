package acquire

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"
)

// The app's own token (client credentials) goes through the same cache and single flight as users' tokens:
// many concurrent requests make one call, each tenant is its own entry, and no user is served the app's token.
func TestAppTokenOneCallPerTenantAndScopes(t *testing.T) {
	e, p, _ := newTestEngine(t)
	p.delay = 50 * time.Millisecond
	app := func(tenant string) Request {
		return Request{Key: AppKey(tenant, "s"), Scopes: []string{"s"}, AppOnly: true, Tenant: tenant}
	}
	var wg sync.WaitGroup
	for range 30 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tok, err := e.Token(context.Background(), app(""))
			if err != nil || !strings.HasPrefix(tok.AccessToken, "app@/") {
				t.Errorf("app token %q, %v", tok.AccessToken, err)
			}
		}()
	}
	wg.Wait()
	if n := p.calls.Load(); n != 1 {
		t.Fatalf("%d client-credentials calls for 30 concurrent requests, want 1", n)
	}
	if tok, err := e.Token(context.Background(), app("other")); err != nil || !strings.HasPrefix(tok.AccessToken, "app@other/") {
		t.Fatalf("other tenant: %q, %v", tok.AccessToken, err)
	}
	if tok, err := e.Token(context.Background(), alice); err != nil || strings.HasPrefix(tok.AccessToken, "app@") {
		t.Fatalf("a user got %q, %v", tok.AccessToken, err)
	}
	if n := p.calls.Load(); n != 3 {
		t.Fatalf("%d calls, want 3 (app, app in another tenant, alice)", n)
	}
}
