package acquire

import (
	"cmp"
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/tokeninjector/caddy-token-injector/internal/metrics"
	"github.com/tokeninjector/caddy-token-injector/internal/tokencache"
)

// What the engine reads from the cache and writes to it, and when a cached token is renewed.

// renewInBackground starts one renewal for req's key unless one is running or recently failed.
func (e *Engine) renewInBackground(parent context.Context, req Request, now time.Time) {
	if _, failing := e.refreshBackoff.Get(req.Key, now); failing {
		return
	}
	if _, running := e.renewing.LoadOrStore(req.Key, struct{}{}); running {
		return
	}
	// Close may run concurrently (a reload that drops this registration while requests are in flight): the
	// WaitGroup may only grow while the engine is open.
	e.closeMu.Lock()
	if e.closed {
		e.closeMu.Unlock()
		e.renewing.Delete(req.Key)
		return
	}
	e.running.Add(1)
	e.closeMu.Unlock()
	e.backgroundRefreshes.Add(1)
	ch := e.flights.DoChan(flightKey(req), func() (any, error) { return e.fetch(parent, req, metrics.SourceRenewal) })
	go func() {
		defer e.running.Done()
		if r := <-ch; r.Err != nil {
			// The cached token stays in use until it expires; the user is asked to interact only then. The
			// backoff also limits this warning to one per key and RetryRefreshAfter.
			cfg := e.cfg()
			e.refreshBackoff.Add(req.Key, struct{}{}, cfg.Now().Add(cfg.RetryRefreshAfter))
			cfg.Logger.Warn("background token renewal failed; the cached token is served until it expires",
				zap.String("scopes", req.Key.Scopes), zap.Duration("retry_in", cfg.RetryRefreshAfter), zap.Error(r.Err))
		}
		// After the cache (or the backoff) was updated, so the next request does not start another renewal.
		e.renewing.Delete(req.Key)
	}()
}

// cached returns req's token from the caller's memo, else from the cache (for the memo to remember), if it is
// usable at now.
func (e *Engine) cached(ctx context.Context, req Request, now time.Time) (tokencache.Token, bool) {
	t, ok := req.Memo.Token(req.Key, now)
	if !ok {
		var err error
		if e.memoized != nil {
			t, ok, err = e.memoized.GetMemo(ctx, req.Key, req.Memo)
		} else {
			t, ok, err = e.cache.Get(ctx, req.Key)
		}
		ok = ok && err == nil
	}
	if !ok || !t.UsableAt(now, cmp.Or(req.ExpiryMargin, e.cfg().ExpiryMargin)) {
		return tokencache.Token{}, false
	}
	return t, true
}

// refreshOn keeps the identity provider's refresh_in when it sent one, else renews RefreshBefore ahead of expiry,
// and never before half the token's remaining life.
func (e *Engine) refreshOn(t tokencache.Token) time.Time {
	if !t.RefreshOn.IsZero() {
		return t.RefreshOn
	}
	cfg := e.cfg()
	now := cfg.Now()
	at := t.ExpiresOn.Add(-cfg.RefreshBefore)
	if half := now.Add(t.ExpiresOn.Sub(now) / 2); at.Before(half) {
		at = half
	}
	return at
}

// store caches t for req. A token that answers a claims challenge replaces one the upstream revoked: a cache
// shared by replicas then tells the others, so none forwards the revoked token again (and makes its own call for
// the claims) where it can read the new one.
func (e *Engine) store(ctx context.Context, req Request, t tokencache.Token) {
	if e.revoking != nil && req.Claims != "" {
		_ = e.revoking.SetRevoked(ctx, req.Key, t)
		return
	}
	_ = e.cache.Set(ctx, req.Key, t)
}
