package redisstore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tokeninjector/caddy-token-injector/internal/metrics"

	"github.com/tokeninjector/caddy-token-injector/internal/tokencache"
)

// Tokens is the Redis tier of the token cache: downstream tokens per (user, auth context, scope set) and signed-in
// accounts, each until it expires. A user's entries share a Cluster slot (the user's hash tag) and an index, so
// DeleteUser removes them in one atomic script.
type Tokens struct {
	c      *Client
	margin atomic.Int64 // nanoseconds
}

// NewTokens returns the token and account store over c. A token is dropped margin before it expires.
func NewTokens(c *Client, margin time.Duration) *Tokens {
	t := &Tokens{c: c}
	t.SetMargin(margin)
	return t
}

// SetMargin changes how long before its expiry a token is dropped.
func (t *Tokens) SetMargin(margin time.Duration) { t.margin.Store(int64(margin)) }

// storedToken is a token as sealed in Redis.
type storedToken struct {
	AccessToken string    `json:"a"`
	ExpiresOn   time.Time `json:"e"`
	RefreshOn   time.Time `json:"r"`
}

func (t *Tokens) tokenName(k tokencache.Key) func(int) string {
	return func(n int) string { return t.c.name(n, "t", k.User, k.User, k.Context, k.Scopes) }
}

func (t *Tokens) indexName(user string) func(int) string {
	return func(n int) string { return t.c.name(n, "idx", user) }
}

func (t *Tokens) accountName(user string) func(int) string {
	return func(n int) string { return t.c.name(n, "acct", user) }
}

// signedOutName marks a user whose tokens and account were deleted, for signedOutKept (see restoreAccount).
func (t *Tokens) signedOutName(user string) string { return t.c.name(0, "out", user) }

// signedOutKept is how long a deleted account stays marked. It outlasts by far how long a replica can miss the
// deletion's invalidation: go-redis pings a subscription every 3 s and reconnects within 10 s, and a replica
// that resubscribes drops every account from its L1.
const signedOutKept = 15 * time.Minute

// Get returns the token for k while it is usable.
func (t *Tokens) Get(ctx context.Context, k tokencache.Key) (tokencache.Token, bool, error) {
	pt, ok, err := t.c.get(ctx, t.tokenName(k), func([]byte) string { return t.indexName(k.User)(0) })
	if err != nil || !ok {
		return tokencache.Token{}, false, err
	}
	var s storedToken
	if json.Unmarshal(pt, &s) != nil {
		return tokencache.Token{}, false, nil
	}
	tok := tokencache.Token{AccessToken: s.AccessToken, ExpiresOn: s.ExpiresOn, RefreshOn: s.RefreshOn}
	if !tok.UsableAt(t.c.now(), time.Duration(t.margin.Load())) {
		return tokencache.Token{}, false, nil
	}
	return tok, true, nil
}

// setToken stores a token and adds it to its user's index, whose expiry grows to the latest token's.
var setToken = redis.NewScript(`
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('SADD', KEYS[2], KEYS[1])
if redis.call('PTTL', KEYS[2]) < tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[2], ARGV[2]) end
return 1`)

// Set stores tok under k until margin before it expires; a token already within the margin is not stored.
func (t *Tokens) Set(ctx context.Context, k tokencache.Key, tok tokencache.Token) error {
	ttl := tok.ExpiresOn.Add(-time.Duration(t.margin.Load())).Sub(t.c.now())
	if ttl < time.Millisecond {
		return nil
	}
	pt, err := json.Marshal(storedToken{AccessToken: tok.AccessToken, ExpiresOn: tok.ExpiresOn, RefreshOn: tok.RefreshOn})
	if err != nil {
		return err
	}
	name, index := t.tokenName(k)(0), t.indexName(k.User)(0)
	return t.c.do(ctx, metrics.RedisSet, func(ctx context.Context) error {
		return setToken.Run(ctx, t.c.rdb, []string{name, index}, t.c.sealed(name, pt), ttl.Milliseconds()).Err()
	})
}

// storedAccount is an account record as sealed in Redis.
type storedAccount struct {
	MSAL      []byte    `json:"m"`
	Scopes    []string  `json:"s"`
	ExpiresOn time.Time `json:"e"`
}

// GetAccount returns the user's account record unless it expired.
func (t *Tokens) GetAccount(ctx context.Context, user string) (tokencache.Account, bool, error) {
	pt, ok, err := t.c.get(ctx, t.accountName(user), nil)
	if err != nil || !ok {
		return tokencache.Account{}, false, err
	}
	var s storedAccount
	if json.Unmarshal(pt, &s) != nil || !t.c.now().Before(s.ExpiresOn) {
		return tokencache.Account{}, false, nil
	}
	return tokencache.Account{MSAL: s.MSAL, Scopes: s.Scopes, ExpiresOn: s.ExpiresOn}, true, nil
}

// SetAccount stores the user's account record until it expires (a sign-in clears a sign-out's mark).
func (t *Tokens) SetAccount(ctx context.Context, user string, a tokencache.Account) error {
	pt, err := json.Marshal(storedAccount{MSAL: a.MSAL, Scopes: a.Scopes, ExpiresOn: a.ExpiresOn})
	if err != nil {
		return err
	}
	name := t.accountName(user)(0)
	return t.c.do(ctx, metrics.RedisSet, func(ctx context.Context) error {
		_, err := t.c.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Set(ctx, name, t.c.sealed(name, pt), t.c.ttlUntil(a.ExpiresOn))
			p.Del(ctx, t.signedOutName(user))
			return nil
		})
		return err
	})
}

// What restoreAccount did.
const (
	restored  = iota // the record was missing and is stored again
	signedOut        // the user signed out on some replica since: nothing is stored
	replaced         // another replica stored one meanwhile: it is kept
)

// restoreScript stores ARGV[1] under KEYS[1] unless KEYS[2] marks a sign-out or KEYS[1] exists.
var restoreScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[2]) == 1 then return 1 end
if redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2], 'NX') then return 0 end
return 2`)

// restoreAccount writes back a replica's copy of an account Redis lost. A copy of one that was deleted must not
// come back: the deletion is published after it is applied, so a replica can find Redis empty before it hears
// that the user signed out.
func (t *Tokens) restoreAccount(ctx context.Context, user string, a tokencache.Account) (int, error) {
	pt, err := json.Marshal(storedAccount{MSAL: a.MSAL, Scopes: a.Scopes, ExpiresOn: a.ExpiresOn})
	if err != nil {
		return 0, err
	}
	name := t.accountName(user)(0)
	var r int
	err = t.c.do(ctx, metrics.RedisSet, func(ctx context.Context) (err error) {
		keys := []string{name, t.signedOutName(user)}
		r, err = restoreScript.Run(ctx, t.c.rdb, keys, t.c.sealed(name, pt), t.c.ttlUntil(a.ExpiresOn).Milliseconds()).Int()
		return err
	})
	return r, err
}

// SwapAccount stores next if the user's record still holds old's MSAL cache: WATCH, read, compare, MULTI/EXEC.
func (t *Tokens) SwapAccount(ctx context.Context, user string, old, next tokencache.Account) (bool, error) {
	pt, err := json.Marshal(storedAccount{MSAL: next.MSAL, Scopes: next.Scopes, ExpiresOn: next.ExpiresOn})
	if err != nil {
		return false, err
	}
	name := t.accountName(user)(0)
	swapped := false
	err = t.c.do(ctx, metrics.RedisSet, func(ctx context.Context) error {
		return t.c.rdb.Watch(ctx, func(tx *redis.Tx) error {
			raw, err := tx.Get(ctx, name).Bytes()
			if err != nil && !errors.Is(err, redis.Nil) {
				return err
			}
			cur, _, oerr := t.c.keys.Open(raw, []byte(name))
			var s storedAccount
			if err != nil || oerr != nil || json.Unmarshal(cur, &s) != nil || !bytes.Equal(s.MSAL, old.MSAL) {
				return nil // gone or replaced meanwhile: the caller keeps what is there
			}
			_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.Set(ctx, name, t.c.sealed(name, pt), t.c.ttlUntil(next.ExpiresOn))
				return nil
			})
			if errors.Is(err, redis.TxFailedErr) {
				return nil // another replica wrote between the read and the write
			}
			swapped = err == nil
			return err
		}, name)
	})
	return swapped, err
}

// deleteUser removes every token in a user's index, the index and the account, and marks the sign-out (KEYS[3],
// for ARGV[1] ms) if given: one slot, one script.
var deleteUser = redis.NewScript(`
local m = redis.call('SMEMBERS', KEYS[1])
for i = 1, #m do redis.call('DEL', m[i]) end
redis.call('DEL', KEYS[1], KEYS[2])
if KEYS[3] then redis.call('SET', KEYS[3], '1', 'PX', ARGV[1]) end
return #m`)

// DeleteUser forgets every token and the account of user, under every name key.
func (t *Tokens) DeleteUser(ctx context.Context, user string) error {
	if user == "" {
		return nil
	}
	for n := range t.c.namers {
		keys := []string{t.indexName(user)(n), t.accountName(user)(n)}
		if n == 0 {
			keys = append(keys, t.signedOutName(user))
		}
		if err := t.c.do(ctx, metrics.RedisDeleteUser, func(ctx context.Context) error {
			return deleteUser.Run(ctx, t.c.rdb, keys, signedOutKept.Milliseconds()).Err()
		}); err != nil {
			return err
		}
	}
	return nil
}

// Len is 0: Redis holds the entries, not this process.
func (t *Tokens) Len() int { return 0 }

// Interface guards
var (
	_ tokencache.Cache = (*Tokens)(nil)
)
