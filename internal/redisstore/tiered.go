package redisstore

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/tokeninjector/caddy-token-injector/internal/session"
	"github.com/tokeninjector/caddy-token-injector/internal/tokencache"
)

// TieredCache is the token cache of a replica: the bounded in-memory L1 (tokencache.Memory, unchanged) in front
// of the shared Redis L2. An L1 hit costs what it costs without Redis; an L1 miss reads Redis and keeps what it
// finds; writes go to both; a sign-out or a rotated refresh token is published, and every other replica's L1
// forgets the user within the pub/sub delay. While Redis is down, L1 keeps serving.
type TieredCache struct {
	l1  *tokencache.Memory
	l2  *Tokens
	bus *bus
}

// NewTieredCache puts l1 in front of l2 and subscribes to the other replicas' invalidations.
func NewTieredCache(l1 *tokencache.Memory, l2 *Tokens) *TieredCache {
	t := &TieredCache{l1: l1, l2: l2, bus: l2.c.bus}
	t.bus.on(func(kind byte, user string) {
		switch kind {
		case invalidUser:
			_ = l1.DeleteUser(context.Background(), user)
		case flushedTokens:
			_, _ = l1.Flush(context.Background())
		case resubscribed:
			// A sign-out or a rotated refresh token may have been missed: every token and account is read from
			// Redis again (tokens too, since their grant may have ended; they are in Redis while valid).
			_, _ = l1.Flush(context.Background())
			l1.FlushAccounts()
		}
	})
	return t
}

// L1 is the in-memory tier, for resizing on reload.
func (t *TieredCache) L1() *tokencache.Memory { return t.l1 }

// L2 is the Redis tier.
func (t *TieredCache) L2() *Tokens { return t.l2 }

// Get returns the token from L1, else from Redis (keeping it in L1).
func (t *TieredCache) Get(ctx context.Context, k tokencache.Key) (tokencache.Token, bool, error) {
	return t.GetMemo(ctx, k, nil)
}

// GetMemo is Get; a hit in L1 is remembered in m. An entry the other replicas' invalidations drop from L1 ends
// the memos of it too.
func (t *TieredCache) GetMemo(ctx context.Context, k tokencache.Key, m *tokencache.Memo) (tokencache.Token, bool, error) {
	if tok, ok, _ := t.l1.GetMemo(ctx, k, m); ok {
		return tok, true, nil
	}
	gen := t.bus.gen.Load()
	tok, ok, err := t.l2.Get(ctx, k)
	if ok {
		t.bus.keep(gen, func() { _ = t.l1.Set(ctx, k, tok) })
	}
	return tok, ok, err
}

// Set stores tok in both tiers; the token is in Redis when Set returns, for the next replica to find.
func (t *TieredCache) Set(ctx context.Context, k tokencache.Key, tok tokencache.Token) error {
	_ = t.l1.Set(ctx, k, tok)
	return t.l2.Set(ctx, k, tok)
}

// SetRevoked is Set for a token that answers a CAE claims challenge: the other replicas drop the user's tokens
// from L1, the revoked one with them (and the memos of it), and read the new one from Redis, rather than each
// forwarding the revoked token once more and calling the identity provider for the claims itself.
func (t *TieredCache) SetRevoked(ctx context.Context, k tokencache.Key, tok tokencache.Token) error {
	if err := t.Set(ctx, k, tok); err != nil {
		return err
	}
	return unlessUnavailable(t.bus.publish(ctx, invalidUser, k.User))
}

// GetAccount reads Redis first: another replica may have rotated the refresh token. While Redis is down, L1's
// copy is used. When Redis lost the record (a restart without persistence, an eviction), L1's copy is written
// back, unless the user signed out meanwhile on another replica (see Tokens.restoreAccount).
func (t *TieredCache) GetAccount(ctx context.Context, user string) (tokencache.Account, bool, error) {
	a, ok, err := t.accountFromRedis(ctx, user)
	if ok {
		return a, true, nil
	}
	local, found, _ := t.l1.GetAccount(ctx, user)
	if !found {
		return tokencache.Account{}, false, err
	}
	if err != nil {
		return local, true, nil
	}
	switch r, err := t.l2.restoreAccount(ctx, user, local); {
	case err != nil || r == restored:
		return local, true, nil
	case r == signedOut: // and this replica has not heard it yet
		_ = t.l1.DeleteUser(ctx, user)
		return tokencache.Account{}, false, nil
	default: // another replica stored a newer one meanwhile
		return t.accountFromRedis(ctx, user)
	}
}

// accountFromRedis reads the user's account from Redis and keeps it in L1.
func (t *TieredCache) accountFromRedis(ctx context.Context, user string) (tokencache.Account, bool, error) {
	gen := t.bus.gen.Load()
	a, ok, err := t.l2.GetAccount(ctx, user)
	if ok {
		t.bus.keep(gen, func() { _ = t.l1.SetAccount(ctx, user, a) })
	}
	return a, ok, err
}

// SetAccount stores a in both tiers and tells the other replicas, whose L1 copies are now stale. While Redis is
// down the record is kept in L1 only, and the request that rotated it is served.
func (t *TieredCache) SetAccount(ctx context.Context, user string, a tokencache.Account) error {
	_ = t.l1.SetAccount(ctx, user, a)
	if err := t.l2.SetAccount(ctx, user, a); err != nil {
		return unlessUnavailable(err)
	}
	return unlessUnavailable(t.bus.publish(ctx, invalidUser, user))
}

// SwapAccount replaces the record in Redis only if it still holds old (see tokencache.AccountStore); L1 follows
// Redis. While Redis is down the record is kept in L1 only, unless the user signed out meanwhile.
func (t *TieredCache) SwapAccount(ctx context.Context, user string, old, next tokencache.Account) (bool, error) {
	gen := t.bus.gen.Load()
	swapped, err := t.l2.SwapAccount(ctx, user, old, next)
	if err != nil {
		if ok, _ := t.l1.SwapAccount(ctx, user, old, next); ok || t.l2.c.pending.has(invalidUser, user) {
			return ok, unlessUnavailable(err)
		}
		_ = t.l1.SetAccount(ctx, user, next) // L1 had not kept it
		return true, unlessUnavailable(err)
	}
	if !swapped {
		_ = t.l1.DeleteUser(ctx, user) // L1's copy is older than Redis', or the user signed out
		return false, nil
	}
	t.bus.keep(gen, func() { _ = t.l1.SetAccount(ctx, user, next) })
	return true, unlessUnavailable(t.bus.publish(ctx, invalidUser, user))
}

// unlessUnavailable drops an outage error: what L1 holds serves until Redis is back.
func unlessUnavailable(err error) error {
	if errors.Is(err, tokencache.ErrStoreUnavailable) {
		return nil
	}
	return err
}

// DeleteUser forgets the user in both tiers and on every replica. While Redis is down it is forgotten here at
// once and in Redis and on the other replicas when Redis is back.
func (t *TieredCache) DeleteUser(ctx context.Context, user string) error {
	if user == "" {
		return nil
	}
	_, err := t.l2.c.endEverywhere(ctx, invalidUser, user, func() { _ = t.l1.DeleteUser(ctx, user) },
		func(ctx context.Context) (int, error) { return 0, t.l2.DeleteUser(ctx, user) })
	return err
}

// Len is the number of tokens in L1.
func (t *TieredCache) Len() int { return t.l1.Len() }

// TieredSessions is the session store of a replica: an in-memory L1 in front of Redis, with ended sessions
// published to every replica. A session missing from L1 while Redis is down is an error (ErrUnavailable), never
// a miss, so the caller answers 503 and nobody is signed out by an outage.
type TieredSessions struct {
	l1        session.Store
	l2        *Sessions
	bus       *bus
	uncounted atomic.Uint64 // Ends for an L1 that counts no ends
	unkept    atomic.Uint64 // sessions read from Redis and served, but not kept in L1
}

// NewTieredSessions puts l1 in front of l2 and subscribes to the other replicas' invalidations.
func NewTieredSessions(l1 session.Store, l2 *Sessions) *TieredSessions {
	t := &TieredSessions{l1: l1, l2: l2, bus: l2.c.bus}
	t.bus.on(func(kind byte, v string) {
		switch kind {
		case invalidSession:
			_ = l1.Delete(context.Background(), v)
		case invalidSessions:
			_, _ = l1.DeleteUser(context.Background(), v)
		case resubscribed:
			// A logout may have been missed: every session is read from Redis again.
			if f, ok := l1.(session.Flusher); ok {
				f.Flush()
			}
		}
	})
	return t
}

// Get returns the session from L1, else from Redis (keeping it in L1 until it ends).
func (t *TieredSessions) Get(ctx context.Context, id string) (session.Session, bool, error) {
	if s, ok, _ := t.l1.Get(ctx, id); ok {
		return s, true, nil
	}
	gen := t.bus.gen.Load()
	s, until, ok, err := t.l2.get(ctx, id)
	if ttl := until.Sub(t.l2.c.now()); ok && ttl > 0 {
		if !t.bus.keep(gen, func() { _ = t.l1.Put(ctx, s, ttl) }) {
			t.unkept.Add(1) // see Ends
		}
	}
	return s, ok, err
}

// Put stores s in both tiers. The sessions it ends, the user's oldest beyond session.MaxSessionsPerUser, end on
// every replica.
func (t *TieredSessions) Put(ctx context.Context, s session.Session, ttl time.Duration) error {
	ended, err := t.l2.put(ctx, s, ttl)
	if err != nil {
		return err
	}
	for _, id := range ended {
		_ = t.l1.Delete(ctx, id)
		_ = t.bus.publish(ctx, invalidSession, id) // one that misses it ends it at its next touch (SET XX)
	}
	return t.l1.Put(ctx, s, ttl)
}

// Touch stores s in both tiers while it is in Redis. One that ended there (a logout on another replica whose
// invalidation has not arrived) leaves L1 too.
func (t *TieredSessions) Touch(ctx context.Context, s session.Session, ttl time.Duration) error {
	stored, _, err := t.l2.write(ctx, s, ttl, true)
	if err != nil {
		return err
	}
	if !stored {
		return t.l1.Delete(ctx, s.ID)
	}
	return t.l1.Touch(ctx, s, ttl)
}

// Delete ends id in both tiers and on every replica. While Redis is down it ends here at once, and in Redis and
// on the other replicas when Redis is back.
func (t *TieredSessions) Delete(ctx context.Context, id string) error {
	_, err := t.l2.c.endEverywhere(ctx, invalidSession, id, func() { _ = t.l1.Delete(ctx, id) },
		func(ctx context.Context) (int, error) { return 0, t.l2.Delete(ctx, id) })
	return err
}

// DeleteUser ends every session of userKey in both tiers and on every replica.
func (t *TieredSessions) DeleteUser(ctx context.Context, userKey string) (int, error) {
	if userKey == "" {
		return 0, nil
	}
	local := 0
	n, err := t.l2.c.endEverywhere(ctx, invalidSessions, userKey,
		func() { k, _ := t.l1.DeleteUser(ctx, userKey); local = max(local, k) },
		func(ctx context.Context) (int, error) { return t.l2.DeleteUser(ctx, userKey) })
	return max(n, local), err
}

// Ends is L1's count (see session.EndCounter): this replica's logouts, the other replicas' (as they are
// published), the flush after a missed one and L1's evictions all reach L1 as deletions. A session served but
// not kept in L1 (an invalidation landed while it was read) would not be there for its own end to reach, so it
// moves every count: the Manager asks again, and the next read keeps it. With an L1 that counts none, every call
// is a new count, so the Manager always asks.
func (t *TieredSessions) Ends(shard session.EndShard) uint64 {
	if e, ok := t.l1.(session.EndCounter); ok {
		return e.Ends(shard) + t.unkept.Load()
	}
	return t.uncounted.Add(1)
}

// Interface guards
var (
	_ tokencache.Memoizing = (*TieredCache)(nil)
	_ tokencache.Revoking  = (*TieredCache)(nil)
	_ tokencache.Cache     = (*TieredCache)(nil)
	_ session.Store        = (*TieredSessions)(nil)
	_ session.EndCounter   = (*TieredSessions)(nil)
)

// Len is the number of sessions in this replica's L1 (-1 if its L1 does not count them).
func (t *TieredSessions) Len() int {
	if c, ok := t.l1.(session.Counter); ok {
		return c.Len()
	}
	return -1
}

var _ session.Counter = (*TieredSessions)(nil)
