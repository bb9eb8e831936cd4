package acquire

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/tokeninjector/caddy-token-injector/internal/tokencache"
)

// Lease is the cross-replica lock every identity-provider grant goes through (On-Behalf-Of, refresh-token
// redemption, client credentials), so that replicas sharing a cache make one call per key: a waiter, once it
// holds the lease, finds the winner's result in the shared cache. redisstore.Leases implements it.
type Lease interface {
	// Acquire waits until this process holds the lease for key or ctx ends. The lease ends by itself after ttl
	// (a holder that died). fence grows with every grant of key. An error other than ctx's means the lock's
	// store is unavailable; the caller then goes on with its in-process single-flight only.
	Acquire(ctx context.Context, key string, ttl time.Duration) (release func(), fence int64, err error)
}

// leaseHolder boxes a Lease for atomic.Pointer.
type leaseHolder struct{ Lease }

// leases is the engine's lease lock, nil without a shared tier.
type leases struct{ p atomic.Pointer[leaseHolder] }

// UseLease makes every identity-provider call of e hold l's lease for its key; nil goes back to in-process only.
func (e *Engine) UseLease(l Lease) {
	if l == nil {
		e.lease.p.Store(nil)
		return
	}
	e.lease.p.Store(&leaseHolder{l})
}

// leaseTTL is how long a lease outlives a holder that died: its holder renews it while the call runs. A third
// of the call's timeout, so that a waiter still has most of its own for the call.
func leaseTTL(timeout time.Duration) time.Duration { return max(timeout/3, 100*time.Millisecond) }

// hold takes the lease for key, bounded by ctx (the call's timeout). held is false without a lease lock or while
// its store is down; err is ctx's end.
func (e *Engine) hold(ctx context.Context, key string, timeout time.Duration) (release func(), held bool, err error) {
	h := e.lease.p.Load()
	if h == nil {
		return func() {}, false, nil
	}
	release, _, err = h.Acquire(ctx, key, leaseTTL(timeout))
	switch {
	case err == nil:
		return release, true, nil
	case ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
		return nil, false, context.DeadlineExceeded
	}
	return func() {}, false, nil
}

// storeAccount keeps the account as a redemption left it: the store swaps it only if it still holds the one
// redeemed. When another replica rotated it meanwhile (its lease expired, or Redis was down), its newer refresh
// token is kept, and the token this call got is still served and cached. When the user signed out meanwhile,
// nothing is kept: the token serves this request only (cache is false).
func (e *Engine) storeAccount(ctx context.Context, user string, old, next tokencache.Account) (cache bool, err error) {
	swapped, err := e.cache.SwapAccount(ctx, user, old, next)
	if swapped || err != nil {
		return true, err
	}
	_, rotated, gerr := e.cache.GetAccount(ctx, user)
	return rotated || gerr != nil, nil
}
