// Package acquire is the acquisition engine: it answers "a token for this user and these scopes" from the cache
// when it can and from the identity provider when it must, with one identity-provider call per (user, scope set)
// however many requests arrive together, and renews tokens in the background before they expire.
package acquire

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/tokeninjector/caddy-token-injector/internal/contract"
	"github.com/tokeninjector/caddy-token-injector/internal/lru"
	"github.com/tokeninjector/caddy-token-injector/internal/tokencache"
)

// Provider gets tokens from the identity provider. MSAL implements it in production.
type Provider interface {
	// OnBehalfOf exchanges a validated user assertion for a token with scopes; claims, when set, is a claims
	// challenge the new token must satisfy.
	OnBehalfOf(ctx context.Context, assertion string, scopes []string, claims string) (tokencache.Token, error)
	// Refresh gets a token with scopes for a signed-in account, redeeming its refresh token when needed, and
	// returns the account as it is afterwards (a rotated refresh token).
	Refresh(ctx context.Context, account tokencache.Account, user string, scopes []string) (tokencache.Token, tokencache.Account, error)
	// AuthCodeURL returns the authorize URL for an interactive sign-in.
	AuthCodeURL(ctx context.Context, p AuthCodeParams) (string, error)
	// RedeemCode completes a sign-in: it redeems the code with the PKCE verifier and checks the id_token nonce.
	RedeemCode(ctx context.Context, p RedeemParams) (SignedIn, error)
	// EndSessionURL is the identity provider's sign-out page, returning to postLogoutRedirectURI.
	EndSessionURL(postLogoutRedirectURI string) string
}

// Config tunes an Engine. Zero values take the defaults noted.
type Config struct {
	// CallTimeout bounds each identity-provider call. Default 10s.
	CallTimeout time.Duration
	// RefreshBefore is how long before expiry a served token is renewed in the background. Default 5m.
	RefreshBefore time.Duration
	// ExpiryMargin is how long before expiry a token stops being forwarded. Default 1m.
	ExpiryMargin time.Duration
	// RetryRefreshAfter is how long a failed background renewal waits before it is tried again. Default 30s.
	RetryRefreshAfter time.Duration
	Now               func() time.Time
}

// Request asks for a token for one validated user.
type Request struct {
	Key tokencache.Key
	// Scopes are the scopes to ask for, in the configured order.
	Scopes []string
	// Assertion is the caller's validated token, for On-Behalf-Of. Without one, the user's signed-in account
	// (its refresh token) is used.
	Assertion string
	// Claims is a claims challenge; a request with claims bypasses the cache.
	Claims string
}

// Stats are counters for metrics and tests.
type Stats struct {
	CacheHits, ProviderCalls, BackgroundRefreshes, ProviderErrors int64
}

// Engine is safe for concurrent use. It lives as long as its cache, across config reloads; Close stops it.
type Engine struct {
	cfg      Config
	cache    tokencache.Cache
	provider Provider
	flights  singleflight.Group
	// accounts serializes the use of each account's refresh token: a rotated refresh token is redeemed once.
	accounts keyedMutex
	// refreshBackoff remembers keys whose background renewal failed recently, so a failing renewal is not
	// retried on every request.
	refreshBackoff *lru.Cache[tokencache.Key, struct{}]
	// renewing holds the keys whose background renewal is running. Every request served meanwhile is past the
	// refresh time too; without this each one would start a goroutine that joins the same flight.
	renewing sync.Map // tokencache.Key -> struct{}

	life    context.Context // ends at Close; bounds every identity-provider call
	stop    context.CancelFunc
	running sync.WaitGroup // background renewals
	closeMu sync.Mutex
	closed  bool

	cacheHits, providerCalls, backgroundRefreshes, providerErrors atomic.Int64
}

// New returns an engine over cache that fetches missing tokens from provider.
func New(cache tokencache.Cache, provider Provider, cfg Config) *Engine {
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = 10 * time.Second
	}
	if cfg.RefreshBefore <= 0 {
		cfg.RefreshBefore = 5 * time.Minute
	}
	if cfg.ExpiryMargin <= 0 {
		cfg.ExpiryMargin = time.Minute
	}
	if cfg.RetryRefreshAfter <= 0 {
		cfg.RetryRefreshAfter = 30 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	life, stop := context.WithCancel(context.Background())
	return &Engine{cfg: cfg, cache: cache, provider: provider, life: life, stop: stop,
		refreshBackoff: lru.New[tokencache.Key, struct{}](4096)}
}

// Token returns a usable token for req: from the cache, or from the identity provider. A cached token due for
// renewal is returned at once and renewed in the background.
func (e *Engine) Token(ctx context.Context, req Request) (tokencache.Token, error) {
	if req.Claims == "" {
		now := e.cfg.Now()
		if t, ok := e.cached(ctx, req.Key, now); ok {
			e.cacheHits.Add(1)
			if !now.Before(t.RefreshOn) {
				e.renewInBackground(req, now)
			}
			return t, nil
		}
	}
	ch := e.flights.DoChan(flightKey(req), func() (any, error) { return e.fetch(req) })
	select {
	case r := <-ch:
		if r.Err != nil {
			return tokencache.Token{}, r.Err
		}
		return r.Val.(tokencache.Token), nil
	case <-ctx.Done():
		// The flight goes on for the other waiters and fills the cache.
		return tokencache.Token{}, ctx.Err()
	}
}

// fetch runs once per flight, detached from any one request: a client that hangs up must not fail the others.
func (e *Engine) fetch(req Request) (_ tokencache.Token, err error) {
	// A flight runs on its own goroutine, where a panic (a library bug on an odd response) would end the process.
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("token acquisition panicked: %v", p)
		}
	}()
	ctx, cancel := context.WithTimeout(e.life, e.cfg.CallTimeout)
	defer cancel()
	if req.Claims == "" {
		// A flight that ended just before this one started may have filled the cache.
		if t, ok := e.cached(ctx, req.Key, e.cfg.Now()); ok && e.cfg.Now().Before(t.RefreshOn) {
			return t, nil
		}
	}
	e.providerCalls.Add(1)
	var t tokencache.Token
	if req.Assertion != "" {
		t, err = e.provider.OnBehalfOf(ctx, req.Assertion, req.Scopes, req.Claims)
	} else {
		t, err = e.refreshAccount(ctx, req)
	}
	if err != nil {
		e.providerErrors.Add(1)
		if errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil {
			err = &contract.Unavailable{Timeout: true, Err: err}
		}
		return tokencache.Token{}, err
	}
	t.RefreshOn = e.refreshOn(t)
	// A cache that fails to store (a network tier) costs a later call, not this request.
	_ = e.cache.Set(ctx, req.Key, t)
	e.refreshBackoff.Remove(req.Key)
	return t, nil
}

// refreshAccount gets a token for a signed-in user from the account's refresh token. Requests for other scope
// sets of the same account wait here, then use the refresh token the first one left behind.
func (e *Engine) refreshAccount(ctx context.Context, req Request) (tokencache.Token, error) {
	unlock, err := e.accounts.Lock(ctx, req.Key.User)
	if err != nil {
		return tokencache.Token{}, err
	}
	defer unlock()
	account, ok, err := e.cache.GetAccount(ctx, req.Key.User)
	if err != nil || !ok {
		return tokencache.Token{}, contract.LoginRequired("", req.Scopes)
	}
	t, updated, err := e.provider.Refresh(ctx, account, req.Key.User, req.Scopes)
	if err != nil {
		return tokencache.Token{}, err
	}
	updated.ExpiresOn = e.cfg.Now().Add(accountLifetime)
	if err := e.cache.SetAccount(ctx, req.Key.User, updated); err != nil {
		return tokencache.Token{}, err
	}
	return t, nil
}

// renewInBackground starts one renewal for req's key unless one is running or recently failed.
func (e *Engine) renewInBackground(req Request, now time.Time) {
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
	ch := e.flights.DoChan(flightKey(req), func() (any, error) { return e.fetch(req) })
	go func() {
		defer e.running.Done()
		if r := <-ch; r.Err != nil {
			// The cached token stays in use until it expires; the user is asked to interact only then.
			e.refreshBackoff.Add(req.Key, struct{}{}, e.cfg.Now().Add(e.cfg.RetryRefreshAfter))
		}
		// After the cache (or the backoff) was updated, so the next request does not start another renewal.
		e.renewing.Delete(req.Key)
	}()
}

func (e *Engine) cached(ctx context.Context, k tokencache.Key, now time.Time) (tokencache.Token, bool) {
	t, ok, err := e.cache.Get(ctx, k)
	if err != nil || !ok || !t.UsableAt(now, e.cfg.ExpiryMargin) {
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
	now := e.cfg.Now()
	at := t.ExpiresOn.Add(-e.cfg.RefreshBefore)
	if half := now.Add(t.ExpiresOn.Sub(now) / 2); at.Before(half) {
		at = half
	}
	return at
}

func flightKey(req Request) string {
	k := req.Key.User + "\x00" + req.Key.Scopes
	if req.Claims != "" {
		k += "\x00" + req.Claims
	}
	return k
}

// Stats returns the engine's counters.
func (e *Engine) Stats() Stats {
	return Stats{CacheHits: e.cacheHits.Load(), ProviderCalls: e.providerCalls.Load(),
		BackgroundRefreshes: e.backgroundRefreshes.Load(), ProviderErrors: e.providerErrors.Load()}
}

// Cache returns the engine's cache.
func (e *Engine) Cache() tokencache.Cache { return e.cache }

// Close cancels in-flight identity-provider calls and waits for background renewals to end.
func (e *Engine) Close() {
	e.closeMu.Lock()
	e.closed = true
	e.closeMu.Unlock()
	e.stop()
	e.running.Wait()
}
