package redisstore

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tokeninjector/caddy-token-injector/internal/metrics"
)

// Leases are locks in Redis with a lifetime (SET NX PX), for one identity-provider call per key across replicas.
// Each grant carries a fencing token, a counter that grows with every grant of the key. A holder that dies keeps
// the lease only until it expires.
type Leases struct {
	c *Client
}

// NewLeases returns the lease lock over c.
func NewLeases(c *Client) *Leases { return &Leases{c: c} }

// leasePoll is how often a waiter tries again; the winner's result is in Redis when it releases.
const leasePoll = 10 * time.Millisecond

// grantLease takes the lease if it is free and returns the next fencing token, 0 if it is held.
var grantLease = redis.NewScript(`
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
	return redis.call('INCR', KEYS[2])
end
return 0`)

// releaseLease deletes the lease if this holder still has it.
var releaseLease = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`)

// Acquire waits until this process holds the lease for key or ctx ends, and returns its fencing token and the
// function that releases it. Redis failing is ErrUnavailable: the caller goes on without the lease.
func (l *Leases) Acquire(ctx context.Context, key string, ttl time.Duration) (release func(), fence int64, err error) {
	tag := l.c.hash(0, "lease", key)
	keys := []string{l.c.prefix + "lease:{" + tag + "}", l.c.prefix + "lease:{" + tag + "}:fence"}
	var id [16]byte
	_, _ = rand.Read(id[:])
	holder := hex.EncodeToString(id[:])
	ttl = max(ttl, 10*time.Millisecond)
	for {
		err := l.c.do(ctx, metrics.RedisLock, func(ctx context.Context) error {
			var err error
			fence, err = grantLease.Run(ctx, l.c.rdb, keys, holder, ttl.Milliseconds()).Int64()
			return err
		})
		if err != nil {
			if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil {
				return nil, 0, cmp.Or(ctx.Err(), err)
			}
			return nil, 0, err
		}
		if fence > 0 {
			stop := l.keepAlive(keys[0], holder, ttl)
			return func() {
				stop()
				// Detached: the request's context may be over, and the next waiter should not wait for expiry.
				rctx, cancel := context.WithTimeout(context.Background(), l.c.timeout)
				defer cancel()
				_ = l.c.do(rctx, metrics.RedisUnlock, func(ctx context.Context) error {
					return releaseLease.Run(ctx, l.c.rdb, keys[:1], holder).Err()
				})
			}, fence, nil
		}
		select {
		case <-ctx.Done():
			return nil, 0, ctx.Err()
		case <-time.After(leasePoll):
		}
	}
}

// extendLease renews the lease if this holder still has it.
var extendLease = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0`)

// keepAlive renews a held lease every third of its ttl until stop is called, so a slow but live holder keeps
// it while a dead one loses it within ttl.
func (l *Leases) keepAlive(key, holder string, ttl time.Duration) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(ttl / 3)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				ctx, cancel := context.WithTimeout(context.Background(), l.c.timeout)
				_ = l.c.do(ctx, metrics.RedisLock, func(ctx context.Context) error {
					return extendLease.Run(ctx, l.c.rdb, []string{key}, holder, ttl.Milliseconds()).Err()
				})
				cancel()
			}
		}
	}()
	return func() { close(done); <-finished }
}
