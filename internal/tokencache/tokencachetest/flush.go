package tokencachetest

import (
	"testing"
	"time"

	"github.com/tokeninjector/caddy-token-injector/internal/tokencache"
)

// RunFlushTests checks a store's Flush (the admin API's flush of a registration): every token goes, every account
// (a signed-in user's refresh state) stays, and the store works on afterwards. Every tier the proxy can run with
// runs it, so the admin API never answers 501 for a configured tier.
func RunFlushTests(t *testing.T, newCache NewCache) {
	c, clock := newCache(t, Config{MaxEntries: 100})
	f, ok := c.(tokencache.Flusher)
	if !ok {
		t.Fatalf("%T does not implement tokencache.Flusher", c)
	}
	ctx := t.Context()
	exp := clock.Now().Add(time.Hour)
	users := []string{"oid-a.tid", "oid-b.tid"}
	for _, u := range users {
		mustSet(t, c, tokencache.Key{User: u, Scopes: "s1"}, token("tok-"+u, exp))
		mustSet(t, c, tokencache.Key{User: u, Scopes: "s2"}, token("tok2-"+u, exp))
		mustSetAccount(t, c, u, account("msal-"+u, exp))
	}
	n, err := f.Flush(ctx)
	if err != nil || n != 4 {
		t.Fatalf("Flush = %d, %v; want 4 tokens", n, err)
	}
	for _, u := range users {
		wantToken(t, c, tokencache.Key{User: u, Scopes: "s1"}, "")
		wantToken(t, c, tokencache.Key{User: u, Scopes: "s2"}, "")
		wantAccount(t, c, u, "msal-"+u)
	}
	if c.Len() != 0 {
		t.Fatalf("Len = %d after the flush", c.Len())
	}
	mustSet(t, c, tokencache.Key{User: users[0], Scopes: "s1"}, token("again", exp))
	wantToken(t, c, tokencache.Key{User: users[0], Scopes: "s1"}, "again")
}
