package redisstore_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tokeninjector/caddy-token-injector/internal/dev/testenv"
	"github.com/tokeninjector/caddy-token-injector/internal/metrics"
	"github.com/tokeninjector/caddy-token-injector/internal/redisstore"
	"github.com/tokeninjector/caddy-token-injector/internal/session"
	"github.com/tokeninjector/caddy-token-injector/internal/tokencache"
)

// replica is one replica's tiered stores over a Redis URL.
type replica struct {
	client   *redisstore.Client
	sessions *redisstore.TieredSessions
	cache    *redisstore.TieredCache
}

func newReplica(t *testing.T, url, prefix string, key []byte, m metrics.Redis) replica {
	t.Helper()
	c, err := redisstore.Open(redisstore.Config{URL: url, Keys: [][]byte{key}, Prefix: prefix,
		Timeout: 500 * time.Millisecond, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return replica{client: c,
		sessions: redisstore.NewTieredSessions(session.NewMemoryStore(0, nil), redisstore.NewSessions(c)),
		cache:    redisstore.NewTieredCache(tokencache.NewMemory(100, 0, nil), redisstore.NewTokens(c, 0))}
}

var signedIn = session.Session{ID: "session-of-the-test", UserKey: user}

// cacheSignedIn stores the session, a token and an account on a, and has b read them into its L1.
func cacheSignedIn(t *testing.T, a, b replica) {
	t.Helper()
	ctx := t.Context()
	exp := time.Now().Add(time.Hour)
	if err := a.sessions.Put(ctx, signedIn, time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := a.cache.Set(ctx, key, tokencache.Token{AccessToken: "downstream", ExpiresOn: exp}); err != nil {
		t.Fatal(err)
	}
	if err := a.cache.SetAccount(ctx, user, tokencache.Account{MSAL: []byte("rt"), ExpiresOn: exp}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // B's L1 keeps no read that A's invalidations overtake
	if _, ok, err := b.sessions.Get(ctx, signedIn.ID); !ok || err != nil {
		t.Fatalf("B: the session: %v %v", ok, err)
	}
	if _, ok, err := b.cache.Get(ctx, key); !ok || err != nil {
		t.Fatalf("B: the token: %v %v", ok, err)
	}
}

// restoreSignedIn writes the session, token and account into Redis again, as a Redis with persistence keeps them
// over its restart (the test server has none).
func restoreSignedIn(t *testing.T, srv *testenv.Redis, prefix string, k []byte) {
	t.Helper()
	c := open(t, srv, prefix, k)
	ctx := t.Context()
	exp := time.Now().Add(time.Hour)
	if err := redisstore.NewSessions(c).Put(ctx, signedIn, time.Hour); err != nil {
		t.Fatal(err)
	}
	tokens := redisstore.NewTokens(c, 0)
	if err := tokens.Set(ctx, key, tokencache.Token{AccessToken: "downstream", ExpiresOn: exp}); err != nil {
		t.Fatal(err)
	}
	if err := tokens.SetAccount(ctx, user, tokencache.Account{MSAL: []byte("rt"), ExpiresOn: exp}); err != nil {
		t.Fatal(err)
	}
}

// waitEnded waits up to 5 s for b to refuse the session and have neither token nor account.
func waitEnded(t *testing.T, b replica, what string) {
	t.Helper()
	ctx := t.Context()
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, sOK, _ := b.sessions.Get(ctx, signedIn.ID)
		_, tOK, _ := b.cache.Get(ctx, key)
		_, aOK, _ := b.cache.GetAccount(ctx, user)
		if !sOK && !tOK && !aOK {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("5 s after %s, B still has the session %v, the token %v, the account %v", what, sOK, tOK, aOK)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A logout on A moves B's count of ends (session.EndCounter) once it reaches B, so B's session Manager, which
// trusts a check made at an unchanged count, asks again and finds the session gone.
func TestLogoutOnAMovesBsCountOfEnds(t *testing.T) {
	srv := testenv.StartRedis(t)
	k := newKey()
	a, b := newReplica(t, srv.URL, "ends:", k, nil), newReplica(t, srv.URL, "ends:", k, nil)
	cacheSignedIn(t, a, b)
	ctx := t.Context()
	before := b.sessions.Ends(session.ShardOf(signedIn.ID))
	if err := b.sessions.Put(ctx, signedIn, time.Hour); err != nil { // a touch on B: no end
		t.Fatal(err)
	}
	if b.sessions.Ends(session.ShardOf(signedIn.ID)) != before {
		t.Fatal("a touch moved the count of ends")
	}
	if err := a.sessions.Delete(ctx, signedIn.ID); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); b.sessions.Ends(session.ShardOf(signedIn.ID)) == before; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("5 s after the logout on A, B's count of ends has not moved")
		}
	}
	if _, ok, _ := b.sessions.Get(ctx, signedIn.ID); ok {
		t.Fatal("B's count moved, but B still has the session")
	}
}

// A logout and a sign-out on A, published while B's subscription was down (Redis restarted, B not yet back),
// end on B once it resubscribes: B's L1 forgets what it may have missed and reads Redis again.
func TestLogoutMissedDuringResubscribeEndsOnB(t *testing.T) {
	srv := testenv.StartRedis(t)
	k, prefix := newKey(), "resub:"
	toB := testenv.NewGate(t, srv.Addr)
	a, b := newReplica(t, srv.URL, prefix, k, nil), newReplica(t, "redis://"+toB.Addr()+"/0", prefix, k, nil)
	cacheSignedIn(t, a, b)

	toB.Set(false) // B is not back yet when Redis is
	srv.Kill()
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	restoreSignedIn(t, srv, prefix, k)
	ctx := t.Context()
	deadline := time.Now().Add(5 * time.Second)
	for { // A's breaker may still be open: the logout reaches Redis at once or from A's pending list
		_ = a.sessions.Delete(ctx, signedIn.ID)
		_ = a.cache.DeleteUser(ctx, user)
		if _, ok, err := redisstore.NewSessions(open(t, srv, prefix, k)).Get(ctx, signedIn.ID); !ok && err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the logout on A did not reach Redis")
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // the invalidation follows the deletion; B cannot hear it
	if _, ok, _ := b.sessions.Get(ctx, signedIn.ID); !ok {
		t.Fatal("B lost the session while cut off from Redis: the test does not show a missed invalidation")
	}
	toB.Set(true)
	waitEnded(t, b, "B resubscribed")
}

// A logout and a sign-out on A while Redis is down for A end on B once Redis is back: A applies them to Redis and
// publishes them then.
func TestLogoutDuringOutageEndsOnBWhenRedisIsBack(t *testing.T) {
	srv := testenv.StartRedis(t)
	k, prefix := newKey(), "pending:"
	toA := testenv.NewGate(t, srv.Addr)
	a, b := newReplica(t, "redis://"+toA.Addr()+"/0", prefix, k, nil), newReplica(t, srv.URL, prefix, k, nil)
	cacheSignedIn(t, a, b)

	toA.Set(false)
	srv.Kill()
	ctx := t.Context()
	if err := a.sessions.Delete(ctx, signedIn.ID); err == nil {
		t.Fatal("a logout on A with Redis down reported success")
	}
	if _, ok, _ := a.sessions.Get(ctx, signedIn.ID); ok {
		t.Fatal("A still has the session it logged out")
	}
	_ = a.cache.DeleteUser(ctx, user)
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	restoreSignedIn(t, srv, prefix, k) // as a Redis with persistence would have kept them
	waitBack := time.Now().Add(5 * time.Second)
	for { // B reads Redis again after its resubscription, and finds the session there
		if _, ok, err := b.sessions.Get(ctx, signedIn.ID); ok && err == nil {
			break
		}
		if time.Now().After(waitBack) {
			t.Fatal("B does not read the session from Redis after it came back")
		}
		time.Sleep(50 * time.Millisecond)
	}
	toA.Set(true)
	waitEnded(t, b, "Redis came back for A")
}

// redisCalls counts what the stores report to the metrics port.
type redisCalls struct {
	mu   sync.Mutex
	ok   map[metrics.RedisOp]int
	errs map[metrics.RedisOp]int
}

func (r *redisCalls) RedisCalled(op metrics.RedisOp, _ time.Duration, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.errs[op]++
	} else {
		r.ok[op]++
	}
}

func (r *redisCalls) counts(op metrics.RedisOp) (ok, errs int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ok[op], r.errs[op]
}

func TestEveryCommandIsReportedToTheMetrics(t *testing.T) {
	srv := testenv.StartRedis(t)
	calls := &redisCalls{ok: map[metrics.RedisOp]int{}, errs: map[metrics.RedisOp]int{}}
	a := newReplica(t, srv.URL, "metrics:", newKey(), calls)
	ctx := context.Background()
	if _, ok, err := a.cache.Get(ctx, key); ok || err != nil { // a miss is a success
		t.Fatalf("%v %v", ok, err)
	}
	cacheSignedIn(t, a, a)
	if err := a.cache.DeleteUser(ctx, user); err != nil {
		t.Fatal(err)
	}
	release, _, err := redisstore.NewLeases(a.client).Acquire(ctx, "lease", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	release()
	if err := a.client.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	for _, op := range []metrics.RedisOp{metrics.RedisGet, metrics.RedisSet, metrics.RedisDeleteUser,
		metrics.RedisPublish, metrics.RedisSubscribe, metrics.RedisLock, metrics.RedisUnlock, metrics.RedisPing} {
		if ok, errs := calls.counts(op); ok == 0 || errs != 0 {
			t.Errorf("%s: %d successes, %d errors; want successes only", op, ok, errs)
		}
	}
	srv.Kill()
	_, _, _ = a.cache.Get(ctx, tokencache.Key{User: "someone-else", Scopes: key.Scopes})
	if _, errs := calls.counts(metrics.RedisGet); errs != 1 {
		t.Errorf("%d get errors after Redis was killed, want 1 (then the breaker stops sending)", errs)
	}
}

// A memo on replica B (a caller served there) ends when another replica ends the entry: A's sign-out, an admin
// flush on A, or A's answer to a CAE challenge, which replaced the revoked token. B's next request then gets what
// Redis has: nothing, or the new token, without forwarding the revoked one and calling Entra for the claims
// itself.
func TestMemoOnBEndsWithAnotherReplicasEnd(t *testing.T) {
	srv := testenv.StartRedis(t)
	ctx := t.Context()
	for _, end := range []struct {
		name string
		do   func(a replica) error
		want string // what B serves next; "" nothing
	}{
		{"sign-out on A", func(a replica) error { return a.cache.DeleteUser(ctx, user) }, ""},
		{"an admin flush on A", func(a replica) error { _, err := a.cache.Flush(ctx); return err }, ""},
		{"a CAE answer on A", func(a replica) error {
			return a.cache.SetRevoked(ctx, key, tokencache.Token{AccessToken: "after-cae", ExpiresOn: time.Now().Add(time.Hour)})
		}, "after-cae"},
	} {
		t.Run(end.name, func(t *testing.T) {
			k := newKey()
			prefix := fmt.Sprintf("memo%x:", k[:4])
			a, b := newReplica(t, srv.URL, prefix, k, nil), newReplica(t, srv.URL, prefix, k, nil)
			cacheSignedIn(t, a, b)
			var memo tokencache.Memo
			if tok, ok, _ := b.cache.GetMemo(ctx, key, &memo); !ok || tok.AccessToken != "downstream" {
				t.Fatalf("B: %q %v", tok.AccessToken, ok)
			}
			if err := end.do(a); err != nil {
				t.Fatal(err)
			}
			for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
				if _, ok := memo.Token(key, time.Now()); !ok {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("5 s after A's end, B's memo still serves the token")
				}
			}
			if tok, ok, _ := b.cache.GetMemo(ctx, key, &memo); ok != (end.want != "") || tok.AccessToken != end.want {
				t.Fatalf("B then serves %q (%v), want %q", tok.AccessToken, ok, end.want)
			}
		})
	}
}
