package tokencache_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tokeninjector/caddy-token-injector/internal/tokencache"
)

func TestFlushKeepsAccounts(t *testing.T) {
	ctx := context.Background()
	m := tokencache.NewMemory(10, time.Minute, nil)
	exp := time.Now().Add(time.Hour)
	for _, u := range []string{"a.t", "b.t"} {
		_ = m.Set(ctx, tokencache.Key{User: u, Scopes: "s"}, tokencache.Token{AccessToken: "tok-" + u, ExpiresOn: exp})
		_ = m.SetAccount(ctx, u, tokencache.Account{MSAL: []byte("{}"), ExpiresOn: exp})
	}
	if n, err := m.Flush(ctx); n != 2 || err != nil {
		t.Fatalf("Flush = %d, %v; want 2", n, err)
	}
	if _, ok, _ := m.Get(ctx, tokencache.Key{User: "a.t", Scopes: "s"}); ok || m.Len() != 0 {
		t.Fatal("a token survived the flush")
	}
	if _, ok, _ := m.GetAccount(ctx, "a.t"); !ok {
		t.Fatal("the flush forgot an account: its session would need a new sign-in")
	}
}

type evictions struct{ n int }

func (e *evictions) Evicted(n int) { e.n += n }

func TestEvictionsAreReported(t *testing.T) {
	ctx := context.Background()
	m := tokencache.NewMemory(2, time.Minute, nil)
	e := &evictions{}
	m.SetObserver(e)
	exp := time.Now().Add(time.Hour)
	for i := range 5 {
		_ = m.Set(ctx, tokencache.Key{User: fmt.Sprint(i), Scopes: "s"}, tokencache.Token{AccessToken: "t", ExpiresOn: exp})
	}
	if e.n != 3 {
		t.Fatalf("%d evictions reported, want 3", e.n)
	}
}
