package redisstore

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/tokeninjector/caddy-token-injector/internal/dev/testenv"
	"github.com/tokeninjector/caddy-token-injector/internal/tokencache"
)

// An invalidation cannot land between a fill's check and its write to L1: it waits for the write and then
// removes what was written; a fill that read Redis before it is dropped.
func TestNoInvalidationLandsInsideAFill(t *testing.T) {
	b := &bus{}
	var mu sync.Mutex
	held := ""
	b.handlers = append(b.handlers, func(byte, string) { mu.Lock(); held = ""; mu.Unlock() })
	gen := b.gen.Load()
	delivered := make(chan struct{})
	b.keep(gen, func() {
		go func() { b.deliver(invalidUser, "someone"); close(delivered) }()
		select {
		case <-delivered:
			t.Error("an invalidation was handled between the fill's check and its write")
		case <-time.After(100 * time.Millisecond):
		}
		mu.Lock()
		held = "read before the invalidation"
		mu.Unlock()
	})
	<-delivered
	if held != "" {
		t.Fatalf("L1 holds %q after the invalidation", held)
	}
	b.keep(gen, func() { t.Fatal("a fill that read Redis before an invalidation was kept") })
}

// restoreAccount stores a lost account, and neither one the user signed out of nor over a newer one.
func TestRestoreAccount(t *testing.T) {
	srv := testenv.StartRedis(t)
	c, err := Open(Config{URL: srv.URL, Keys: [][]byte{make([]byte, 32)}, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	exp := time.Now().Add(time.Hour)
	account := func(rt string) tokencache.Account { return tokencache.Account{MSAL: []byte(rt), ExpiresOn: exp} }
	for _, tc := range []struct {
		name   string
		before func(tokens *Tokens, user string) error
		want   int
		holds  string // what Redis holds after the restore
	}{
		{"lost", func(*Tokens, string) error { return nil }, restored, "copy"},
		{"stored meanwhile", func(tokens *Tokens, user string) error {
			return tokens.SetAccount(ctx, user, account("newer"))
		}, replaced, "newer"},
		{"signed out", func(tokens *Tokens, user string) error {
			return tokens.DeleteUser(ctx, user)
		}, signedOut, ""},
		{"signed out and in again", func(tokens *Tokens, user string) error {
			if err := tokens.DeleteUser(ctx, user); err != nil {
				return err
			}
			if err := tokens.SetAccount(ctx, user, account("again")); err != nil {
				return err
			}
			return c.rdb.Del(ctx, tokens.accountName(user)(0)).Err() // then evicted
		}, restored, "copy"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tokens, user := NewTokens(c, 0), "user-"+tc.name
			if err := tc.before(tokens, user); err != nil {
				t.Fatal(err)
			}
			r, err := tokens.restoreAccount(ctx, user, account("copy"))
			if err != nil || r != tc.want {
				t.Fatalf("restoreAccount = %d, %v; want %d", r, err, tc.want)
			}
			got, ok, err := tokens.GetAccount(ctx, user)
			if err != nil || string(got.MSAL) != tc.holds || ok != (tc.holds != "") {
				t.Fatalf("Redis holds %q %v %v, want %q", got.MSAL, ok, err, tc.holds)
			}
		})
	}
}
