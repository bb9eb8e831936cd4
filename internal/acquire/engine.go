// Package acquire is the acquisition engine: it answers "a token for this user and these scopes" from the cache
// when it can and from the identity provider when it must, with one identity-provider call per (user, scope set)
// however many requests arrive together, and renews tokens in the background before they expire. It speaks to
// the identity provider through the Provider port (package entra implements it) and returns the provider's
// typed errors, or ErrLoginRequired, as they are: the contract package decides what a client gets.
package acquire

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"

	"github.com/tokeninjector/caddy-token-injector/internal/lru"
	"github.com/tokeninjector/caddy-token-injector/internal/metrics"
	"github.com/tokeninjector/caddy-token-injector/internal/tokencache"
)

// ErrLoginRequired means the user's sign-in is gone: no account is kept for them, or it holds no refresh token.
// Only a new sign-in helps.
var ErrLoginRequired = errors.New("the user must sign in again")

// Provider gets tokens from the identity provider. The entra package implements it over MSAL Go.
type Provider interface {
	// OnBehalfOf exchanges a validated user assertion for a token as g asks.
	OnBehalfOf(ctx context.Context, assertion string, g Grant) (tokencache.Token, error)
	// Refresh gets a token as g asks for a signed-in account, redeeming its refresh token when needed, and
	// returns the account as it is afterwards (a rotated refresh token). It returns ErrLoginRequired when the
	// account can no longer get tokens silently.
	Refresh(ctx context.Context, account tokencache.Account, user string, g Grant) (tokencache.Token, tokencache.Account, error)
	// AppToken gets the app's own token (client credentials) as g asks.
	AppToken(ctx context.Context, g Grant) (tokencache.Token, error)
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
	// RetryRefreshAfter is how long a failed background renewal waits before it is tried again, and so how
	// often at most its warning is logged per key. Default 30s.
	RetryRefreshAfter time.Duration
	Now               func() time.Time
	// Logger receives failed background renewals. Default: none.
	Logger *zap.Logger
	// Metrics receives cache lookups, acquisitions and single-flight waits. Default: metrics.Nop.
	Metrics metrics.Engine
}

func (c Config) withDefaults() Config {
	if c.CallTimeout <= 0 {
		c.CallTimeout = 10 * time.Second
	}
	if c.RefreshBefore <= 0 {
		c.RefreshBefore = 5 * time.Minute
	}
	if c.ExpiryMargin <= 0 {
		c.ExpiryMargin = time.Minute
	}
	if c.RetryRefreshAfter <= 0 {
		c.RetryRefreshAfter = 30 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	if c.Metrics == nil {
		c.Metrics = metrics.Nop{}
	}
	return c
}

// Grant is what one identity-provider call asks for.
type Grant struct {
	// Scopes are the scopes to ask for, in the configured order.
	Scopes []string
	// Tenant is the tenant to ask: the caller's own on a multi-tenant registration. Empty: the registration's.
	Tenant string
	// Claims is a claims challenge to satisfy (decoded JSON), such as an upstream's CAE challenge. Empty: none.
	Claims string
}

// Request asks for a token for one validated user, or for the app itself (AppOnly).
type Request struct {
	Key tokencache.Key
	// Scopes are the scopes to ask for, in the configured order.
	Scopes []string
	// Assertion is the caller's validated token, for On-Behalf-Of. Without one, the user's signed-in account
	// (its refresh token) is used.
	Assertion string
	// AppOnly asks for the app's own token (client credentials); Key.User is then a tokencache.AppUser.
	AppOnly bool
	// Tenant is the caller's tenant on a multi-tenant registration, where On-Behalf-Of must go. Default: the
	// registration's tenant.
	Tenant string
	// Claims is a claims challenge the token must satisfy (an upstream's CAE challenge, decoded). A request with
	// claims skips the cache and its token replaces the cached one.
	Claims string
	// Timeout bounds the identity-provider call this request starts (the route's timeout). Default: the
	// engine's CallTimeout.
	Timeout time.Duration
	// ExpiryMargin is how close to expiry a cached token may be and still be forwarded on this route. Default:
	// the engine's ExpiryMargin.
	ExpiryMargin time.Duration
	// Memo, when set, is the caller's memory of the cache entry its last request was served from (the proven
	// caller's, the opened session's): a hit on it costs no cache lookup. Nil: every hit looks the cache up.
	Memo *tokencache.Memo
}

// Stats are counters for metrics and tests.
type Stats struct {
	CacheHits, ProviderCalls, BackgroundRefreshes, ProviderErrors int64
}

// Engine is safe for concurrent use. It lives as long as its cache, across config reloads; Close stops it.
type Engine struct {
	config   atomic.Pointer[Config] // replaced whole by Update
	cache    tokencache.Cache
	memoized tokencache.Memoizing // cache, when its hits can be memoized; else nil
	revoking tokencache.Revoking  // cache, when it can tell other replicas of a revoked token; else nil
	provider Provider
	flights  singleflight.Group
	// accounts serializes the use of each account's refresh token: a rotated refresh token is redeemed once.
	accounts keyedMutex
	// lease extends the single-flight and accounts across replicas (see UseLease).
	lease leases
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
	life, stop := context.WithCancel(context.Background())
	e := &Engine{cache: cache, provider: provider, life: life, stop: stop,
		refreshBackoff: lru.New[tokencache.Key, struct{}](4096)}
	e.memoized, _ = cache.(tokencache.Memoizing)
	e.revoking, _ = cache.(tokencache.Revoking)
	e.Update(cfg)
	return e
}

// Update applies new settings; calls already under way keep the ones they started with.
func (e *Engine) Update(cfg Config) {
	cfg = cfg.withDefaults()
	e.config.Store(&cfg)
}

func (e *Engine) cfg() *Config { return e.config.Load() }

// Token returns a usable token for req: from the cache, or from the identity provider. A cached token due for
// renewal is returned at once and renewed in the background.
func (e *Engine) Token(ctx context.Context, req Request) (tokencache.Token, error) {
	cfg := e.cfg()
	if req.Claims == "" { // a claims challenge is answered by the identity provider, never by the cache
		now := cfg.Now()
		t, ok := e.cached(ctx, req, now)
		cfg.Metrics.CacheLookup(ok)
		if ok {
			e.cacheHits.Add(1)
			cfg.Metrics.Acquired(metrics.SourceCache, nil)
			if !now.Before(t.RefreshOn) {
				e.renewInBackground(ctx, req, now)
			}
			return t, nil
		}
	}
	return e.join(ctx, cfg, req)
}

// join waits for req's flight to the identity provider, starting it if none is under way. It is Token's slow path,
// apart so that the flight's closure does not move every cache hit's req to the heap.
func (e *Engine) join(ctx context.Context, cfg *Config, req Request) (tokencache.Token, error) {
	cfg.Metrics.Waiting(1)
	defer cfg.Metrics.Waiting(-1)
	miss := req // captured by the flight: a copy of its own, so that the cache-hit path keeps req on the stack
	ch := e.flights.DoChan(flightKey(miss), func() (any, error) { return e.fetch(ctx, miss, metrics.SourceIdentityProvider) })
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
// parent is the request that started it, whose trace the identity-provider call joins.
func (e *Engine) fetch(parent context.Context, req Request, source metrics.Source) (_ tokencache.Token, err error) {
	cfg := e.cfg()
	called := false // the identity provider was asked: report the flight's outcome
	// A flight runs on its own goroutine, where a panic (a library bug on an odd response) would end the process.
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("token acquisition panicked: %v", p)
		}
		if called {
			cfg.Metrics.Acquired(source, err)
		}
	}()
	ctx, cancel := context.WithTimeout(withSpanOf(e.life, parent), cmp.Or(req.Timeout, cfg.CallTimeout))
	defer cancel()
	// A flight that ended just before this one started may have filled the cache.
	if req.Claims == "" {
		if t, ok := e.cached(ctx, req, cfg.Now()); ok && cfg.Now().Before(t.RefreshOn) {
			cfg.Metrics.Acquired(metrics.SourceCache, nil)
			return t, nil
		}
	}
	release, held, err := e.hold(ctx, "token\x00"+flightKey(req), cmp.Or(req.Timeout, cfg.CallTimeout))
	if err != nil {
		return tokencache.Token{}, err
	}
	defer release()
	// Another replica may have held the lease and left its token in the shared tier.
	if req.Claims == "" && held {
		if t, ok := e.cached(ctx, req, cfg.Now()); ok && cfg.Now().Before(t.RefreshOn) {
			cfg.Metrics.Acquired(metrics.SourceCache, nil)
			return t, nil
		}
	}
	called = true
	e.providerCalls.Add(1)
	var t tokencache.Token
	cache := true
	g := Grant{Scopes: req.Scopes, Tenant: req.Tenant, Claims: req.Claims}
	switch {
	case req.AppOnly:
		t, err = e.provider.AppToken(ctx, g)
	case req.Assertion != "":
		t, err = e.provider.OnBehalfOf(ctx, req.Assertion, g)
	default:
		t, cache, err = e.refreshAccount(ctx, req, g)
	}
	if err != nil {
		e.providerErrors.Add(1)
		if ctx.Err() != nil && !errors.Is(err, context.DeadlineExceeded) {
			// Whatever the provider made of it, the cause is that the call ran out of time.
			err = fmt.Errorf("%w: %w", context.DeadlineExceeded, err)
		}
		return tokencache.Token{}, err
	}
	t.RefreshOn = e.refreshOn(t)
	if cache { // a cache that fails to store (a network tier) costs a later call, not this request
		e.store(ctx, req, t)
	}
	e.refreshBackoff.Remove(req.Key)
	return t, nil
}

// refreshAccount gets a token for a signed-in user from the account's refresh token, and says whether it may be
// cached (not if the user signed out during the call). Requests for other scope sets of the same account wait
// here, then use the refresh token the first one left behind.
func (e *Engine) refreshAccount(ctx context.Context, req Request, g Grant) (tokencache.Token, bool, error) {
	unlock, err := e.accounts.Lock(ctx, req.Key.User)
	if err != nil {
		return tokencache.Token{}, false, err
	}
	defer unlock()
	// Across replicas too: the account read below then has the refresh token the last redemption left.
	release, _, err := e.hold(ctx, "account\x00"+req.Key.User, cmp.Or(req.Timeout, e.cfg().CallTimeout))
	if err != nil {
		return tokencache.Token{}, false, err
	}
	defer release()
	account, ok, err := e.cache.GetAccount(ctx, req.Key.User)
	if err != nil {
		return tokencache.Token{}, false, err
	}
	if !ok {
		return tokencache.Token{}, false, ErrLoginRequired
	}
	t, updated, err := e.provider.Refresh(ctx, account, req.Key.User, g)
	if err != nil && bytes.Equal(updated.MSAL, account.MSAL) {
		return tokencache.Token{}, false, err
	}
	// A rotated refresh token is kept even when the access token that came with it is refused: the old one is
	// spent.
	updated.ExpiresOn = e.cfg().Now().Add(accountLifetime)
	cache, serr := e.storeAccount(ctx, req.Key.User, account, updated)
	if err = cmp.Or(err, serr); err != nil {
		return tokencache.Token{}, false, err
	}
	return t, cache, nil
}

// flightKey joins the requests that one identity-provider call answers: the same entry, and the same claims
// challenge (a request with claims must not be answered by a call without them).
func flightKey(req Request) string {
	return req.Key.User + "\x00" + req.Key.Context + "\x00" + req.Key.Scopes + "\x00" + req.Claims
}

// Stats returns the engine's counters.
func (e *Engine) Stats() Stats {
	return Stats{CacheHits: e.cacheHits.Load(), ProviderCalls: e.providerCalls.Load(),
		BackgroundRefreshes: e.backgroundRefreshes.Load(), ProviderErrors: e.providerErrors.Load()}
}

// Close cancels in-flight identity-provider calls and waits for background renewals to end.
func (e *Engine) Close() {
	e.closeMu.Lock()
	e.closed = true
	e.closeMu.Unlock()
	e.stop()
	e.running.Wait()
}
