package tokencache_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tokeninjector/caddy-token-injector/internal/tokencache"
	"github.com/tokeninjector/caddy-token-injector/internal/tokencache/tokencachetest"
)

func TestMemoryFlush(t *testing.T) { tokencachetest.RunFlushTests(t, newMemory) }

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
