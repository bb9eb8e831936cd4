package redisstore_test

import (
	"testing"
	"time"

	"github.com/tokeninjector/caddy-token-injector/internal/dev/testenv"
	"github.com/tokeninjector/caddy-token-injector/internal/redisstore"
	"github.com/tokeninjector/caddy-token-injector/internal/tokencache"
)

// evictAccounts deletes the account records under prefix and nothing else, as a Redis under maxmemory evicts
// them or a failover to a lagging replica loses them.
func evictAccounts(t *testing.T, srv *testenv.Redis, prefix string) {
	t.Helper()
	rdb := srv.Client()
	defer rdb.Close()
	names, err := rdb.Keys(t.Context(), prefix+"*:acct").Result()
	if err != nil || len(names) == 0 {
		t.Fatalf("no account in Redis to evict: %v %v", names, err)
	}
	if err := rdb.Del(t.Context(), names...).Err(); err != nil {
		t.Fatal(err)
	}
}

// accountInRedis reads the user's account from Redis alone.
func accountInRedis(t *testing.T, srv *testenv.Redis, prefix string, k []byte) (tokencache.Account, bool) {
	t.Helper()
	a, ok, err := redisstore.NewTokens(open(t, srv, prefix, k), 0).GetAccount(t.Context(), user)
	if err != nil {
		t.Fatal(err)
	}
	return a, ok
}

// What a replica holds of an account is written back when Redis lost it, and never when the user signed out: the
// sign-out is published after it is applied, so B can find Redis empty before it hears of it.
func TestAccountWrittenBackOnlyIfNotSignedOut(t *testing.T) {
	for _, tc := range []struct {
		name string
		// change is what happens on A after B read the account: B has not heard of it yet.
		change  func(t *testing.T, a, b replica, srv *testenv.Redis, prefix string)
		want    string // the refresh state B and Redis hold afterwards, "" for none
		comment string
	}{
		{"evicted", func(t *testing.T, a, b replica, srv *testenv.Redis, prefix string) {
			evictAccounts(t, srv, prefix)
		}, "rt", "B's copy is lost"},
		{"signed out", func(t *testing.T, a, b replica, srv *testenv.Redis, prefix string) {
			if err := a.cache.L2().DeleteUser(t.Context(), user); err != nil { // applied, not yet published
				t.Fatal(err)
			}
		}, "", "the sign-out is undone"},
		{"signed out and in again, then evicted", func(t *testing.T, a, b replica, srv *testenv.Redis, prefix string) {
			if err := a.cache.DeleteUser(t.Context(), user); err != nil {
				t.Fatal(err)
			}
			exp := time.Now().Add(time.Hour)
			if err := a.cache.SetAccount(t.Context(), user, tokencache.Account{MSAL: []byte("rt2"), ExpiresOn: exp}); err != nil {
				t.Fatal(err)
			}
			time.Sleep(200 * time.Millisecond) // B hears both, and reads the new one
			if got, ok, _ := b.cache.GetAccount(t.Context(), user); !ok || string(got.MSAL) != "rt2" {
				t.Fatalf("B: %q %v, want rt2", got.MSAL, ok)
			}
			evictAccounts(t, srv, prefix)
		}, "rt2", "the new sign-in's copy is lost"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := testenv.StartRedis(t)
			k, prefix := newKey(), "restore:"
			a, b := newReplica(t, srv.URL, prefix, k, nil), newReplica(t, srv.URL, prefix, k, nil)
			cacheSignedIn(t, a, b)
			if got, ok, err := b.cache.GetAccount(t.Context(), user); !ok || err != nil || string(got.MSAL) != "rt" {
				t.Fatalf("B: %q %v %v", got.MSAL, ok, err)
			}
			tc.change(t, a, b, srv, prefix)
			got, ok, err := b.cache.GetAccount(t.Context(), user)
			if err != nil || string(got.MSAL) != tc.want || ok != (tc.want != "") {
				t.Fatalf("B reads %q %v %v, want %q", got.MSAL, ok, err, tc.want)
			}
			if inRedis, ok := accountInRedis(t, srv, prefix, k); string(inRedis.MSAL) != tc.want || ok != (tc.want != "") {
				t.Fatalf("Redis holds %q %v, want %q: %s", inRedis.MSAL, ok, tc.want, tc.comment)
			}
			if tc.want == "" {
				if _, ok, _ := b.cache.Get(t.Context(), key); ok {
					t.Fatal("B still has the signed-out user's token")
				}
			}
		})
	}
}
