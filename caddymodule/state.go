package caddymodule

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/tokeninjector/caddy-token-injector/internal/acquire"
	"github.com/tokeninjector/caddy-token-injector/internal/callerauth"
	"github.com/tokeninjector/caddy-token-injector/internal/entra"
	"github.com/tokeninjector/caddy-token-injector/internal/session"
	"github.com/tokeninjector/caddy-token-injector/internal/signin"
	"github.com/tokeninjector/caddy-token-injector/internal/tokencache"
)

// settings is a registration with every placeholder resolved and every default applied: what the shared state
// is built from and updated with.
type settings struct {
	AuthorityHost, Tenant, ClientID      string
	Credential                           entra.Credential
	Audiences, AllowedOrigins            []string
	CallerScopes, CallerApps             []string // the route's, not the registration's
	InlineSecrets                        []string // fields whose secret is written in the config itself
	AllowedTenants, ClientCapabilities   []string
	CacheMaxEntries                      int
	CallerCacheMaxBytes                  int64
	Timeout, RefreshBefore, ExpiryMargin time.Duration
	ClockSkew                            time.Duration
	SignIn                               *signInSettings
	Redis                                *redisSettings // the global option's, nil without one
}

// signInSettings is a resolved sign_in block.
type signInSettings struct {
	CookieSecrets                []string
	Path, SameSite               string
	Partitioned, EndSession      bool
	IdleTimeout, AbsoluteTimeout time.Duration
	LoginTimeout                 time.Duration // 0: signin's default
}

// poolKey is what makes a registration a different registration: the cloud, the tenant, the app and the kind of
// credential. Everything else (timeouts, cache bounds, the secret's value, sign-in settings) is applied to the
// surviving state on reload, so changing it keeps every cached token and session.
func (s settings) poolKey() string {
	sum := sha256.Sum256([]byte(s.AuthorityHost + "\x00" + s.Tenant + "\x00" + s.ClientID + "\x00" + s.Credential.Kind()))
	key := "token_injector/" + hex.EncodeToString(sum[:16])
	if s.Redis != nil {
		key += "/redis-" + s.Redis.identity()
	}
	return key
}

// registrationState is what survives config reloads: the validator's key cache, the token cache, the engine and
// its background renewals, and the sessions. It lives in registrations until the last config using it is
// unloaded. Each reload applies its settings to it in place (update).
type registrationState struct {
	validator *callerauth.Validator
	entra     *entra.Client
	engine    *acquire.Engine
	cache     *tokencache.Memory // the in-process tier, L1 when there is a shared one
	sessions  session.Store
	marks     *signin.Marks // the sign-in's used states, codes and handoffs: a reload must not forget them
	shared    *sharedTier   // nil without redis

	mu      sync.Mutex
	http    *http.Client         // the current client to Entra; replaced by update
	config  *prometheus.Registry // identifies the config load whose settings are applied (see apply)
	applied settings
	roots   *x509.CertPool
}

// registrations holds registrationState by settings.poolKey.
var registrations = caddy.NewUsagePool()

func newRegistrationState(r settings, roots *x509.CertPool, logger *zap.Logger) (*registrationState, error) {
	hc := entra.NewHTTPClient(roots, r.Timeout)
	validator, err := callerauth.New(validatorConfig(r, hc))
	if err != nil {
		return nil, err
	}
	client, err := entra.New(entraConfig(r, hc))
	if err != nil {
		validator.Close()
		return nil, err
	}
	cache := tokencache.NewMemory(r.CacheMaxEntries, r.ExpiryMargin, nil)
	cache.SetObserver(observer)
	var store tokencache.Cache = cache
	sessions := session.NewMemoryStore(session.DefaultMaxSessions, nil)
	var shared *sharedTier
	if r.Redis != nil {
		if shared, err = newSharedTier(r, cache, sessions, logger); err != nil {
			validator.Close()
			return nil, err
		}
		store, sessions = shared.cache, shared.sessions
	}
	engine := acquire.New(store, entra.Instrument(client, observer), engineConfig(r, logger))
	if shared != nil {
		engine.UseLease(shared.leases)
	}
	logger.Info("token cache created", zap.String("tenant", r.Tenant), zap.String("client_id", r.ClientID),
		zap.Int("max_entries", r.CacheMaxEntries), zap.Bool("redis", shared != nil))
	return &registrationState{validator: validator, entra: client, engine: engine, cache: cache, http: hc,
		sessions: sessions, marks: signin.NewMarks(), shared: shared}, nil
}

// apply makes ctx's config the owner of the state's settings. The first handler of a config load applies them to
// the surviving state (a reload: tokens and sessions stay); every other handler of the same load that shares the
// registration must agree with them, since one registration has one set.
func (s *registrationState) apply(ctx caddy.Context, r settings, roots *x509.CertPool, logger *zap.Logger) error {
	// Each config load gets a metrics registry of its own, shared by all its modules (and Caddy keeps no other
	// exported per-load identity): it tells another handler of this load from the first one of the next.
	load := ctx.GetMetricsRegistry()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.config == load {
		// The cache drops entries at the smallest margin of the load's routes; each route checks its own.
		if r.ExpiryMargin < s.applied.ExpiryMargin {
			s.applied.ExpiryMargin = r.ExpiryMargin
			s.setMargin(r.ExpiryMargin)
		}
		return conflict(s.applied, s.roots, r, roots)
	}
	if s.config != nil {
		if err := s.update(r, roots, logger); err != nil {
			return err
		}
	}
	s.config, s.applied, s.roots = load, r, roots
	logCredential(logger, s.entra, r)
	for _, field := range r.InlineSecrets { // once per registration and load
		logger.Warn("a secret is written in the config: it is kept in the JSON config, GET /config/ and autosave.json; "+
			"pass it with {env.NAME} or {file./path}, which resolve when the config loads", zap.String("field", field),
			zap.String("client_id", r.ClientID))
	}
	return nil
}

// conflict names the first registration setting two handlers of one config set differently. The route's
// scopes, timeout, expiry margin and sign-in settings are its own and may differ.
func conflict(a settings, aRoots *x509.CertPool, b settings, bRoots *x509.CertPool) error {
	for _, f := range []struct {
		name string
		same bool
	}{
		{a.Credential.Kind(), a.Credential == b.Credential}, // the kinds are equal: they are in the pool key
		{"audience", slices.Equal(a.Audiences, b.Audiences)},
		{"allowed_tenants", slices.Equal(a.AllowedTenants, b.AllowedTenants)},
		{"client_capabilities", slices.Equal(a.ClientCapabilities, b.ClientCapabilities)},
		{"tls_trust_pool", aRoots.Equal(bRoots)},
		{"cache_max_entries", a.CacheMaxEntries == b.CacheMaxEntries},
		{"caller_cache_max_bytes", a.CallerCacheMaxBytes == b.CallerCacheMaxBytes},
		{"refresh_before", a.RefreshBefore == b.RefreshBefore},
		{"clock_skew", a.ClockSkew == b.ClockSkew},
	} {
		if !f.same {
			return fmt.Errorf("%s: routes of one registration (client_id %s) set it differently; set it once, in the global token_injector option", f.name, a.ClientID)
		}
	}
	return nil
}

// update applies a reloaded config's settings to the surviving state: tokens and sessions stay. s.mu is held.
func (s *registrationState) update(r settings, roots *x509.CertPool, logger *zap.Logger) error {
	hc := entra.NewHTTPClient(roots, r.Timeout)
	if err := s.validator.Update(validatorConfig(r, hc)); err != nil {
		return err
	}
	if err := s.entra.Update(entraConfig(r, hc)); err != nil {
		return err
	}
	s.engine.Update(engineConfig(r, logger))
	s.cache.Resize(r.CacheMaxEntries)
	s.setMargin(r.ExpiryMargin)
	old := s.http
	s.http = hc
	entra.CloseIdleConnections(old)
	return nil
}

func validatorConfig(r settings, hc *http.Client) callerauth.Config {
	return callerauth.Config{AuthorityHost: r.AuthorityHost, Tenant: r.Tenant,
		Audiences: append([]string{r.ClientID}, r.Audiences...), HTTPClient: hc, ClockSkew: r.ClockSkew,
		FetchTimeout: r.Timeout, AllowedTenants: r.AllowedTenants, MaxCachedBytes: r.CallerCacheMaxBytes}
}

func entraConfig(r settings, hc *http.Client) entra.Config {
	return entra.Config{AuthorityHost: r.AuthorityHost, Tenant: r.Tenant, ClientID: r.ClientID,
		Credential: r.Credential, HTTPClient: hc, Capabilities: r.ClientCapabilities}
}

func engineConfig(r settings, logger *zap.Logger) acquire.Config {
	return acquire.Config{CallTimeout: r.Timeout, RefreshBefore: r.RefreshBefore, ExpiryMargin: r.ExpiryMargin,
		Logger: logger, Metrics: observer}
}

// pendingGrace is how long a registration's Redis client outlives it while logouts made during an outage still
// wait for Redis (a reload that changed the redis block, during the outage).
const pendingGrace = 10 * time.Minute

// Destruct runs when no config uses the registration any more: it stops background renewals and key fetches,
// and closes the idle connections to Entra.
func (s *registrationState) Destruct() error {
	s.engine.Close()
	s.validator.Close()
	if s.shared != nil {
		s.shared.client.Release(pendingGrace)
	}
	s.mu.Lock()
	entra.CloseIdleConnections(s.http)
	s.mu.Unlock()
	return nil
}
