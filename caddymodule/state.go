package caddymodule

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"net/http"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/tokeninjector/caddy-token-injector/internal/acquire"
	"github.com/tokeninjector/caddy-token-injector/internal/callerauth"
	"github.com/tokeninjector/caddy-token-injector/internal/session"
	"github.com/tokeninjector/caddy-token-injector/internal/tokencache"
)

// settings is a registration with every placeholder resolved and every default applied: what the shared state
// is built from and updated with.
type settings struct {
	AuthorityHost, Tenant, ClientID, ClientSecret string
	Audiences, AllowedOrigins                     []string
	CacheMaxEntries                               int
	Timeout, RefreshBefore, ExpiryMargin          time.Duration
	ClockSkew                                     time.Duration
	SignIn                                        *signInSettings
}

// signInSettings is a resolved sign_in block.
type signInSettings struct {
	CookieSecrets                []string
	Path, SameSite               string
	Partitioned, EndSession      bool
	IdleTimeout, AbsoluteTimeout time.Duration
}

// poolKey is what makes a registration a different registration: the cloud, the tenant, the app and the kind of
// credential. Everything else (timeouts, cache bounds, the secret's value, sign-in settings) is applied to the
// surviving state on reload, so changing it keeps every cached token and session.
func (s settings) poolKey() string {
	sum := sha256.Sum256([]byte(s.AuthorityHost + "\x00" + s.Tenant + "\x00" + s.ClientID + "\x00" + "client_secret"))
	return "token_injector/" + hex.EncodeToString(sum[:16])
}

// registrationState is what survives config reloads: the validator's key cache, the token cache, the engine and
// its background renewals, and the sessions. It lives in registrations until the last config using it is
// unloaded.
type registrationState struct {
	validator *callerauth.Validator
	engine    *acquire.Engine
	cache     *tokencache.Memory
	sessions  session.Store
}

// registrations holds registrationState by settings.poolKey.
var registrations = caddy.NewUsagePool()

func newHTTPClient(roots *x509.CertPool, timeout time.Duration) *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			Proxy:               http.ProxyFromEnvironment,
			TLSClientConfig:     &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
			ForceAttemptHTTP2:   true,
			MaxIdleConnsPerHost: 64,
			// A herd of new users must not open one TLS connection to Entra per user: calls share HTTP/2
			// connections (or queue for one, within timeout) instead of dialling by the thousand.
			MaxConnsPerHost:     64,
			IdleConnTimeout:     90 * time.Second,
			TLSHandshakeTimeout: 10 * time.Second,
		},
		// MSAL and the validator bound each call with a context; this is a backstop.
		Timeout: 2 * timeout,
	}
}

func newRegistrationState(r settings, roots *x509.CertPool, logger *zap.Logger) (*registrationState, error) {
	client := newHTTPClient(roots, r.Timeout)
	validator, err := callerauth.New(callerauth.Config{
		AuthorityHost: r.AuthorityHost,
		Tenant:        r.Tenant,
		Audiences:     append([]string{r.ClientID}, r.Audiences...),
		HTTPClient:    client,
		ClockSkew:     r.ClockSkew,
		FetchTimeout:  r.Timeout,
	})
	if err != nil {
		return nil, err
	}
	provider, err := acquire.NewMSAL(acquire.MSALConfig{AuthorityHost: r.AuthorityHost, Tenant: r.Tenant,
		ClientID: r.ClientID, ClientSecret: r.ClientSecret, HTTPClient: client})
	if err != nil {
		return nil, err
	}
	cache := tokencache.NewMemory(r.CacheMaxEntries, r.ExpiryMargin, nil)
	engine := acquire.New(cache, provider, acquire.Config{
		CallTimeout:   r.Timeout,
		RefreshBefore: r.RefreshBefore,
		ExpiryMargin:  r.ExpiryMargin,
	})
	logger.Info("token cache created", zap.String("tenant", r.Tenant), zap.String("client_id", r.ClientID),
		zap.Int("max_entries", r.CacheMaxEntries))
	return &registrationState{validator: validator, engine: engine, cache: cache,
		sessions: session.NewMemoryStore(session.DefaultMaxSessions, nil)}, nil
}

// Destruct stops background renewals when no config uses the registration any more.
func (s *registrationState) Destruct() error {
	s.engine.Close()
	return nil
}

// update applies r's tuning to state that survived a reload (or that another route of the registration made),
// keeping every cached token and session.
func (s *registrationState) update(r settings, roots *x509.CertPool) error {
	s.cache.Resize(r.CacheMaxEntries)
	s.cache.SetMargin(r.ExpiryMargin)
	return nil
}
