package redisstore

import (
	"context"
	"crypto/rand"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tokeninjector/caddy-token-injector/internal/dev/testenv"
	"github.com/tokeninjector/caddy-token-injector/internal/session"
	"github.com/tokeninjector/caddy-token-injector/internal/tokencache"
)

// These tests time a race with a go-redis hook: then runs once, right after the first command named name returns
// to the caller, so the interleaving happens on every run.
type afterCommand struct {
	name  string
	armed atomic.Bool
	then  func()
}

func (h *afterCommand) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *afterCommand) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

func (h *afterCommand) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if cmd.Name() == h.name && h.armed.CompareAndSwap(true, false) {
			h.then()
		}
		return err
	}
}

// after arms then to run once after c's next command named name.
func after(c *Client, name string, then func()) {
	h := &afterCommand{name: name, then: then}
	h.armed.Store(true)
	c.rdb.AddHook(h)
}

const raceUser = "aaaaaaaa-0000-4000-8000-000000000001.tenant-1"

func openRacing(t *testing.T, url string, keys ...[]byte) *Client {
	t.Helper()
	c, err := Open(Config{URL: url, Keys: keys, Prefix: "race:", Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func randomKey() []byte { k := make([]byte, 32); _, _ = rand.Read(k); return k }

// A logout on this replica that lands between a fill's read of Redis and its write to L1 ends the session: a
// replica does not hear its own invalidation, so the logout itself drops the fill.
func TestLocalLogoutRacingAFill(t *testing.T) {
	srv := testenv.StartRedis(t)
	ctx := t.Context()
	k := randomKey()
	c := openRacing(t, srv.URL, k)
	sessions := NewTieredSessions(session.NewMemoryStore(100, nil), NewSessions(c))
	s := session.Session{ID: "signed-in-elsewhere", UserKey: raceUser, CreatedAt: time.Now(), LastSeenAt: time.Now()}
	if err := NewSessions(openRacing(t, srv.URL, k)).Put(ctx, s, time.Hour); err != nil {
		t.Fatal(err)
	}
	after(c, "get", func() { _ = sessions.Delete(ctx, s.ID) })
	if _, ok, _ := sessions.Get(ctx, s.ID); !ok {
		t.Fatal("the request that read the session before the logout: a miss")
	}
	if _, ok, _ := sessions.Get(ctx, s.ID); ok {
		t.Fatal("the logged-out session resolves again from this replica's L1")
	}
}

// The same for a sign-out and the account's fill: L1 would keep the refresh token, and write it back to Redis
// once the sign-out's mark expired.
func TestLocalSignOutRacingAnAccountFill(t *testing.T) {
	srv := testenv.StartRedis(t)
	ctx := t.Context()
	k := randomKey()
	c := openRacing(t, srv.URL, k)
	l1 := tokencache.NewMemory(100, 0, nil)
	cache := NewTieredCache(l1, NewTokens(c, 0))
	a := tokencache.Account{MSAL: []byte("rt"), ExpiresOn: time.Now().Add(24 * time.Hour)}
	if err := NewTokens(openRacing(t, srv.URL, k), 0).SetAccount(ctx, raceUser, a); err != nil {
		t.Fatal(err)
	}
	after(c, "get", func() { _ = cache.DeleteUser(ctx, raceUser) })
	if _, ok, _ := cache.GetAccount(ctx, raceUser); !ok {
		t.Fatal("the request that read the account before the sign-out: a miss")
	}
	if _, ok, _ := l1.GetAccount(ctx, raceUser); ok {
		t.Fatal("L1 holds the refresh token after the sign-out on this replica")
	}
}

// A redemption's swap while Redis is down keeps its rotated refresh token in L1, unless the user signed out while
// it ran; then nothing is kept.
func TestSwapDuringAnOutage(t *testing.T) {
	for _, signOut := range []bool{false, true} {
		c := openRacing(t, "redis://127.0.0.1:1/0", randomKey()) // nothing listens there
		l1 := tokencache.NewMemory(100, 0, nil)
		cache := NewTieredCache(l1, NewTokens(c, 0))
		ctx := t.Context()
		old := tokencache.Account{MSAL: []byte("rt"), ExpiresOn: time.Now().Add(time.Hour)}
		_ = l1.SetAccount(ctx, raceUser, old) // the copy the redemption read
		if signOut {
			_ = cache.DeleteUser(ctx, raceUser)
		}
		next := tokencache.Account{MSAL: []byte("rt+"), ExpiresOn: old.ExpiresOn}
		swapped, err := cache.SwapAccount(ctx, raceUser, old, next)
		a, ok, _ := l1.GetAccount(ctx, raceUser)
		if err != nil || swapped == signOut || ok == signOut || ok && string(a.MSAL) != "rt+" {
			t.Fatalf("signed out %v: swapped %v (%v), L1 holds %q %v", signOut, swapped, err, a.MSAL, ok)
		}
	}
}

// A session B served without keeping it in L1 (an invalidation landed while B read it) still ends on B when A
// logs it out: B's Manager, which trusts a memo while B's count of ends holds, asks again.
func TestRemoteLogoutOfASessionBDidNotKeep(t *testing.T) {
	srv := testenv.StartRedis(t)
	k, cookieKey := randomKey(), randomKey()
	onB := openRacing(t, srv.URL, k)
	a := NewTieredSessions(session.NewMemoryStore(100, nil), NewSessions(openRacing(t, srv.URL, k)))
	b := NewTieredSessions(session.NewMemoryStore(100, nil), NewSessions(onB))
	ma, _ := session.NewManager(session.Config{Keys: [][]byte{cookieKey}}, a)
	mb, _ := session.NewManager(session.Config{Keys: [][]byte{cookieKey}}, b)
	signedIn := httptest.NewRecorder()
	if _, err := ma.Create(signedIn, httptest.NewRequest("GET", "http://proxy.example/", nil), session.Session{UserKey: raceUser}); err != nil {
		t.Fatal(err)
	}
	withCookie := func() *http.Request {
		r := httptest.NewRequest("GET", "http://proxy.example/", nil)
		for _, c := range signedIn.Result().Cookies() {
			r.AddCookie(c)
		}
		return r
	}
	after(onB, "get", func() { b.bus.deliver(invalidUser, "someone else") }) // another user's refresh token rotated
	if _, err := mb.Caller(withCookie()); err != nil {
		t.Fatal(err)
	}
	ma.Destroy(httptest.NewRecorder(), withCookie()) // the logout, on A
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := mb.Caller(withCookie()); err != nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("5 s after the logout on A, B still accepts the cookie")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// After a key rotation, what a read moved to the new key's name is still found by a sign-out, and a logout that
// lands while it is moved is not undone.
func TestMovedByRotationStillEnds(t *testing.T) {
	tok := tokencache.Token{AccessToken: "downstream", ExpiresOn: time.Now().Add(time.Hour)}
	k := tokencache.Key{User: raceUser, Scopes: "https://graph.microsoft.com/user.read"}
	s := session.Session{ID: "session-of-the-test", UserKey: raceUser, CreatedAt: time.Now(), LastSeenAt: time.Now()}
	signOutEverywhere := func(c *Client) error { _, err := NewSessions(c).DeleteUser(t.Context(), raceUser); return err }
	logout := func(c *Client) error { return NewSessions(c).Delete(t.Context(), s.ID) }
	signOut := func(c *Client) error { return NewTokens(c, 0).DeleteUser(t.Context(), raceUser) }
	for _, tc := range []struct {
		name  string
		token bool // the token is moved and ended, else the session
		// end ends, on another replica, what a replica on the new keys has just moved (or, with during, is
		// moving: after its command of that name).
		end    func(*Client) error
		during string
	}{
		{"sign out everywhere", false, signOutEverywhere, ""},
		{"sign-out", true, signOut, ""},
		{"logout before the move's write", false, logout, "pttl"},
		{"logout after the move's write", false, logout, "set"},
		{"sign-out before the move's write", true, signOut, "pttl"},
		{"sign-out after the move's write", true, signOut, "set"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := testenv.StartRedis(t)
			ctx := t.Context()
			oldKey, newKey := randomKey(), randomKey()
			before := openRacing(t, srv.URL, oldKey)
			if err := NewSessions(before).Put(ctx, s, time.Hour); err != nil {
				t.Fatal(err)
			}
			if err := NewTokens(before, 0).Set(ctx, k, tok); err != nil {
				t.Fatal(err)
			}
			rotated, other := openRacing(t, srv.URL, newKey, oldKey), openRacing(t, srv.URL, newKey, oldKey)
			if tc.during != "" {
				after(rotated, tc.during, func() {
					if err := tc.end(other); err != nil {
						t.Error(err)
					}
				})
			}
			found := func(c *Client) bool {
				if tc.token {
					_, ok, _ := NewTokens(c, 0).Get(ctx, k)
					return ok
				}
				_, ok, _ := NewSessions(c).Get(ctx, s.ID)
				return ok
			}
			if !found(rotated) {
				t.Fatal("not found after the rotation")
			}
			if tc.during == "" {
				if err := tc.end(other); err != nil {
					t.Fatal(err)
				}
			}
			if found(other) {
				t.Fatalf("found after the %s", tc.name)
			}
		})
	}
}

// A touch on B of a session A logged out, before A's invalidation reaches B, ends it on B too: Redis said it is
// gone.
func TestTouchOfASessionEndedElsewhere(t *testing.T) {
	srv := testenv.StartRedis(t)
	ctx := t.Context()
	k := randomKey()
	b := NewTieredSessions(session.NewMemoryStore(100, nil), NewSessions(openRacing(t, srv.URL, k)))
	s := session.Session{ID: "logged-out-on-a", UserKey: raceUser, CreatedAt: time.Now(), LastSeenAt: time.Now()}
	if err := b.Put(ctx, s, time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := NewSessions(openRacing(t, srv.URL, k)).Delete(ctx, s.ID); err != nil { // A's, not yet published
		t.Fatal(err)
	}
	if err := b.Touch(ctx, s, time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := b.Get(ctx, s.ID); ok {
		t.Fatal("B's L1 kept the session its touch found ended in Redis")
	}
}
