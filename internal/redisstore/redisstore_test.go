package redisstore_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokeninjector/caddy-token-injector/internal/acquire"
	"github.com/tokeninjector/caddy-token-injector/internal/dev/testenv"
	"github.com/tokeninjector/caddy-token-injector/internal/redisstore"
	"github.com/tokeninjector/caddy-token-injector/internal/session"
	"github.com/tokeninjector/caddy-token-injector/internal/tokencache"
)

const user = "aaaaaaaa-0000-4000-8000-000000000001.tenant-1"

var key = tokencache.Key{User: user, Scopes: "https://graph.microsoft.com/user.read"}

// open returns a client with keys and a fixed prefix, so that two clients share entries.
func open(t *testing.T, srv *testenv.Redis, prefix string, keys ...[]byte) *redisstore.Client {
	t.Helper()
	c, err := redisstore.Open(redisstore.Config{URL: srv.URL, Keys: keys, Prefix: prefix, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestKeyRotation(t *testing.T) {
	srv := testenv.StartRedis(t)
	oldKey, newKey := newKey(), newKey()
	ctx := t.Context()
	before := redisstore.NewTokens(open(t, srv, "rot:", oldKey), 0)
	exp := time.Now().Add(time.Hour)
	if err := before.Set(ctx, key, tokencache.Token{AccessToken: "sealed-with-the-old-key", ExpiresOn: exp}); err != nil {
		t.Fatal(err)
	}
	if err := before.SetAccount(ctx, user, tokencache.Account{MSAL: []byte("rt"), ExpiresOn: exp}); err != nil {
		t.Fatal(err)
	}
	// The new key goes first, the old one stays: everything opens, and is sealed again with the new key.
	rotated := redisstore.NewTokens(open(t, srv, "rot:", newKey, oldKey), 0)
	if tok, ok, err := rotated.Get(ctx, key); err != nil || !ok || tok.AccessToken != "sealed-with-the-old-key" {
		t.Fatalf("after the rotation: %q %v %v", tok.AccessToken, ok, err)
	}
	if a, ok, err := rotated.GetAccount(ctx, user); err != nil || !ok || string(a.MSAL) != "rt" {
		t.Fatalf("account after the rotation: %v %v", ok, err)
	}
	// Once the old key is dropped, what was read meanwhile still opens.
	newOnly := redisstore.NewTokens(open(t, srv, "rot:", newKey), 0)
	if tok, ok, err := newOnly.Get(ctx, key); err != nil || !ok || tok.AccessToken != "sealed-with-the-old-key" {
		t.Fatalf("with the new key only: %q %v %v; the read with both keys did not re-seal", tok.AccessToken, ok, err)
	}
	// DeleteUser reaches entries under every key.
	if err := rotated.DeleteUser(ctx, user); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := before.GetAccount(ctx, user); ok {
		t.Fatal("DeleteUser left the account written under the old key")
	}
}

func TestWrongKeyReadsAsMissing(t *testing.T) {
	srv := testenv.StartRedis(t)
	ctx := t.Context()
	right := redisstore.NewTokens(open(t, srv, "same:", newKey()), 0)
	if err := right.Set(ctx, key, tokencache.Token{AccessToken: "secret", ExpiresOn: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	wrong := redisstore.NewTokens(open(t, srv, "same:", newKey()), 0)
	if tok, ok, err := wrong.Get(ctx, key); err != nil || ok {
		t.Fatalf("another key's replica read %q, %v, %v; want a plain miss", tok.AccessToken, ok, err)
	}
}

func TestValueMovedToAnotherUsersKeyDoesNotOpen(t *testing.T) {
	srv := testenv.StartRedis(t)
	ctx := t.Context()
	c := open(t, srv, "move:", newKey())
	tokens := redisstore.NewTokens(c, 0)
	other := tokencache.Key{User: "bbbbbbbb-0000-4000-8000-000000000002.tenant-1", Scopes: key.Scopes}
	exp := time.Now().Add(time.Hour)
	for _, k := range []tokencache.Key{key, other} {
		if err := tokens.Set(ctx, k, tokencache.Token{AccessToken: k.User, ExpiresOn: exp}); err != nil {
			t.Fatal(err)
		}
	}
	rdb := srv.Client()
	defer rdb.Close()
	names, _ := rdb.Keys(ctx, "move:{*}:t:*").Result()
	if len(names) != 2 {
		t.Fatalf("%d token keys, want 2", len(names))
	}
	// Swap the two values: each ciphertext is bound to its own key name.
	a, _ := rdb.Get(ctx, names[0]).Result()
	b, _ := rdb.Get(ctx, names[1]).Result()
	rdb.Set(ctx, names[0], b, time.Hour)
	rdb.Set(ctx, names[1], a, time.Hour)
	for _, k := range []tokencache.Key{key, other} {
		if tok, ok, err := tokens.Get(ctx, k); ok || err != nil {
			t.Fatalf("Get(%s) = %q, %v, %v after the values were swapped; want a miss", k.User, tok.AccessToken, ok, err)
		}
	}
}

func TestUsedOnceAcrossReplicas(t *testing.T) {
	srv := testenv.StartRedis(t)
	k := newKey()
	a, b := redisstore.NewUsed(open(t, srv, "used:", k)), redisstore.NewUsed(open(t, srv, "used:", k))
	exp := time.Now().Add(time.Minute)
	var fresh atomic.Int32
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			u := []*redisstore.Used{a, b}[i%2]
			if ok, err := u.MarkUsed(t.Context(), "code:x", exp); err == nil && ok {
				fresh.Add(1)
			}
		}()
	}
	wg.Wait()
	if n := fresh.Load(); n != 1 {
		t.Fatalf("the code was accepted %d times across two replicas, want 1", n)
	}
	if seen, err := b.Seen(t.Context(), "code:x"); err != nil || !seen {
		t.Fatalf("Seen = %v, %v", seen, err)
	}
}

func TestLeaseIsExclusiveAndExpiresWithItsHolder(t *testing.T) {
	srv := testenv.StartRedis(t)
	k := newKey()
	var _ acquire.Lease = (*redisstore.Leases)(nil)
	a, b := redisstore.NewLeases(open(t, srv, "lease:", k)), redisstore.NewLeases(open(t, srv, "lease:", k))
	ctx := t.Context()
	release, f1, err := a.Acquire(ctx, "obo", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 1500*time.Millisecond)
	defer cancel()
	if _, _, err := b.Acquire(short, "obo", time.Second); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a held lease (renewed by its holder) was granted to another: %v", err)
	}
	release()
	rel2, f2, err := b.Acquire(ctx, "obo", 300*time.Millisecond)
	if err != nil || f2 <= f1 {
		t.Fatalf("after release: fence %d then %d, %v", f1, f2, err)
	}
	rel2()
	// A holder that dies stops renewing: its lease ends within its ttl and another replica proceeds.
	dying, err := redisstore.Open(redisstore.Config{URL: srv.URL, Keys: [][]byte{k}, Prefix: "lease:", Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := redisstore.NewLeases(dying).Acquire(ctx, "refresh", 300*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	_ = dying.Close() // its renewals fail from now on, as a dead process's would
	start := time.Now()
	rel3, _, err := a.Acquire(ctx, "refresh", time.Second)
	if err != nil {
		t.Fatalf("the lease of a dead holder was never granted: %v", err)
	}
	rel3()
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("a dead holder's 300ms lease blocked others for %s", d)
	}
}

func TestRedisDownIsUnavailableNotMissingAndRecovers(t *testing.T) {
	srv := testenv.StartRedis(t)
	k := newKey()
	c := open(t, srv, "down:", k)
	sessions := redisstore.NewTieredSessions(session.NewMemoryStore(0, nil), redisstore.NewSessions(c))
	ctx := t.Context()
	if err := sessions.Put(ctx, session.Session{ID: "known", UserKey: user}, time.Hour); err != nil {
		t.Fatal(err)
	}
	srv.Kill()
	if s, ok, err := sessions.Get(ctx, "known"); err != nil || !ok || s.ID != "known" {
		t.Fatalf("a session in L1 during the outage: %v, %v", ok, err)
	}
	start := time.Now()
	if _, ok, err := sessions.Get(ctx, "unknown-here"); ok || !errors.Is(err, tokencache.ErrStoreUnavailable) {
		t.Fatalf("a session not in L1 during the outage: %v, %v; want ErrStoreUnavailable", ok, err)
	}
	for range 50 { // the breaker answers at once
		_, _, _ = sessions.Get(ctx, "unknown-here")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("51 lookups during the outage took %s: the breaker does not stop waiting", d)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, _, err := sessions.Get(ctx, "unknown-here")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("5 s after Redis came back: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A rotation across replicas in two rolling reloads (README: the new key second everywhere, then first
// everywhere): at every step of the rollout, each replica reads the sessions the other signed in, and a logout on
// either ends the session on the other.
func TestRollingRotationInTwoSteps(t *testing.T) {
	srv := testenv.StartRedis(t)
	oldKey, newKey := newKey(), newKey()
	for i, step := range []struct{ a, b [][]byte }{
		{[][]byte{oldKey}, [][]byte{oldKey, newKey}},         // the first reload, under way
		{[][]byte{oldKey, newKey}, [][]byte{newKey, oldKey}}, // the second, under way
		{[][]byte{newKey, oldKey}, [][]byte{newKey, oldKey}},
	} {
		open := func(keys [][]byte) *redisstore.TieredSessions {
			c, err := redisstore.Open(redisstore.Config{URL: srv.URL, Keys: keys, Prefix: "rolling:", Timeout: time.Second})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = c.Close() })
			return redisstore.NewTieredSessions(session.NewMemoryStore(100, nil), redisstore.NewSessions(c))
		}
		a, b := open(step.a), open(step.b)
		time.Sleep(100 * time.Millisecond) // both subscribed
		for _, from := range []struct {
			name       string
			on, reader *redisstore.TieredSessions
		}{{"a", a, b}, {"b", b, a}} {
			s := session.Session{ID: fmt.Sprintf("step-%d-from-%s", i, from.name), UserKey: user}
			if err := from.on.Put(t.Context(), s, time.Hour); err != nil {
				t.Fatal(err)
			}
			if _, ok, err := from.reader.Get(t.Context(), s.ID); !ok || err != nil {
				t.Fatalf("step %d: the other replica cannot read a session signed in on %s: %v", i, from.name, err)
			}
			if err := from.on.Delete(t.Context(), s.ID); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(5 * time.Second)
			for _, ok, _ := from.reader.Get(t.Context(), s.ID); ok; _, ok, _ = from.reader.Get(t.Context(), s.ID) {
				if time.Now().After(deadline) {
					t.Fatalf("step %d: 5 s after a logout on %s, the other replica still has the session", i, from.name)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
	}
}

// The admin API's flush forgets every token in Redis and in every replica's memory, and keeps accounts; another
// key prefix (another deployment on the same Redis) keeps its tokens.
func TestFlushReachesRedisAndEveryReplica(t *testing.T) {
	srv := testenv.StartRedis(t)
	k := newKey()
	a, b := newReplica(t, srv.URL, "flush*[x]:", k, nil), newReplica(t, srv.URL, "flush*[x]:", k, nil)
	other := newReplica(t, srv.URL, "flush-x:", k, nil) // which flush*[x]: would match as a pattern
	cacheSignedIn(t, a, b)
	ctx := t.Context()
	exp := time.Now().Add(time.Hour)
	for i := range 1200 { // more than one SCAN batch
		tk := tokencache.Key{User: fmt.Sprintf("user-%d", i), Scopes: "s"}
		if err := a.cache.Set(ctx, tk, tokencache.Token{AccessToken: "t", ExpiresOn: exp}); err != nil {
			t.Fatal(err)
		}
	}
	if err := other.cache.Set(ctx, key, tokencache.Token{AccessToken: "theirs", ExpiresOn: exp}); err != nil {
		t.Fatal(err)
	}
	n, err := a.cache.Flush(ctx)
	if err != nil || n != 1201 {
		t.Fatalf("Flush = %d, %v; want the 1201 tokens Redis held", n, err)
	}
	for deadline := time.Now().Add(5 * time.Second); b.cache.Len() != 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("5 s after the flush on A, B's memory holds %d tokens", b.cache.Len())
		}
	}
	if _, ok, _ := b.cache.Get(ctx, key); ok {
		t.Fatal("B still gets the token from Redis")
	}
	if _, ok, _ := b.cache.GetAccount(ctx, user); !ok {
		t.Fatal("the flush took the account: sessions would have to sign in again")
	}
	if tok, ok, _ := other.cache.L2().Get(ctx, key); !ok || tok.AccessToken != "theirs" {
		t.Fatal("the flush reached another key prefix")
	}
}
