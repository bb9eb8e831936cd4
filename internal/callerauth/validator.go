// Package callerauth validates the bearer token a caller presents (an Office add-in SSO token, or a token MSAL.js got
// for the add-in's own web API) before the proxy spends an On-Behalf-Of exchange on it. Tokens are Entra ID access
// tokens for our own app, v1.0 or v2.0, RS256-signed with the tenant's published keys.
package callerauth

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/tokeninjector/caddy-token-injector/internal/lru"
)

const (
	defaultClockSkew       = time.Minute
	defaultMaxCachedTokens = 10000
	defaultFetchTimeout    = 10 * time.Second

	// maxCacheLifetime bounds how long a proven token skips verification, so keys withdrawn from the JWKS stop being
	// trusted within the hour even for tokens that are still within their exp.
	maxCacheLifetime = time.Hour

	// maxTokenBytes rejects oversized input before hashing or parsing it. Entra access tokens are a few KB; group
	// overage keeps them well below this.
	maxTokenBytes = 32 << 10
)

// Config configures a Validator. AuthorityHost, Tenant, Audiences and HTTPClient are required.
type Config struct {
	AuthorityHost   string        // e.g. https://login.microsoftonline.com (no trailing slash)
	Tenant          string        // tenant GUID or domain; the tenant GUID itself comes from the v2 discovery issuer
	Audiences       []string      // accepted aud values: the app's client id and its App ID URIs
	HTTPClient      *http.Client  // used for discovery and JWKS
	ClockSkew       time.Duration // default 1 minute, applied to exp and nbf
	MaxCachedTokens int           // default 10000: proven tokens remembered by SHA-256 of the raw token
	Now             func() time.Time
	FetchTimeout    time.Duration // default 10s, bounds each discovery/JWKS fetch
}

// Identity is what a valid token says about its caller. Treat Scopes as read-only: it may be shared with the cache.
type Identity struct {
	TenantID, ObjectID string   // tid, oid
	HomeAccountID      string   // "<oid>.<tid>", Entra's account id: the key the proxy partitions caches by
	Username           string   // preferred_username (v2), upn or unique_name (v1)
	Name               string   // name
	Scopes             []string // scp split on spaces
	ClientID           string   // azp (v2) or appid (v1): the app that obtained the token
	ExpiresAt          time.Time
}

// InvalidTokenError reports a problem with the token itself; the proxy answers 401 invalid_token. Description is
// specific and safe to show the caller: it never contains the token, and any claim value it quotes is truncated
// printable ASCII without '"' or '\' (the framing quotes are '"': escape them for an RFC 6750 error_description).
type InvalidTokenError struct{ Description string }

func (e *InvalidTokenError) Error() string { return "callerauth: invalid token: " + e.Description }

// ErrKeysUnavailable is wrapped by every error of Validate that is not an *InvalidTokenError: the tenant's discovery
// documents or signing keys could not be fetched, so the token could not be checked (the proxy answers 503).
var ErrKeysUnavailable = errors.New("callerauth: tenant signing keys unavailable")

func invalid(format string, args ...any) error {
	return &InvalidTokenError{Description: fmt.Sprintf(format, args...)}
}

// Validator checks caller tokens for one tenant and one app. It is safe for concurrent use.
type Validator struct {
	audiences []string
	skew      time.Duration
	now       func() time.Time
	keys      *keyStore
	// cache remembers proven tokens by a seeded hash of the raw token; an entry counts only if its token is equal,
	// so a hash collision is a miss, never another caller's identity. Cheaper than SHA-256 on every request.
	seed  maphash.Seed
	cache *lru.Cache[uint64, *cachedIdentity]

	verifications atomic.Int64 // RSA signature checks performed; lets tests prove the cache works
}

type cachedIdentity struct {
	id  Identity
	kid string // so tokens signed by a key that leaves the JWKS are forgotten
	raw string // the proven token
}

// New checks cfg and returns a Validator. It does no network I/O: keys are fetched on first use or by Warm.
func New(cfg Config) (*Validator, error) {
	if cfg.HTTPClient == nil {
		return nil, errors.New("callerauth: HTTPClient is required")
	}
	authority, err := checkAuthority(cfg.AuthorityHost)
	if err != nil {
		return nil, err
	}
	if err := checkTenant(cfg.Tenant); err != nil {
		return nil, err
	}
	var auds []string
	for _, a := range cfg.Audiences {
		if a = strings.TrimSpace(a); a != "" {
			auds = append(auds, a)
		}
	}
	if len(auds) == 0 {
		return nil, errors.New("callerauth: at least one audience is required")
	}
	if cfg.ClockSkew < 0 || cfg.MaxCachedTokens < 0 || cfg.FetchTimeout < 0 {
		return nil, errors.New("callerauth: ClockSkew, MaxCachedTokens and FetchTimeout must not be negative")
	}
	skew := cmpOr(cfg.ClockSkew, defaultClockSkew)
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	v := &Validator{
		audiences: auds,
		skew:      skew,
		now:       now,
		seed:      maphash.MakeSeed(),
		cache:     lru.New[uint64, *cachedIdentity](cmpOr(cfg.MaxCachedTokens, defaultMaxCachedTokens)),
	}
	v.keys = &keyStore{
		authority: authority,
		tenant:    cfg.Tenant,
		client:    cfg.HTTPClient,
		timeout:   cmpOr(cfg.FetchTimeout, defaultFetchTimeout),
		now:       now,
		onRemoved: v.forgetKeys,
	}
	return v, nil
}

func cmpOr[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

func checkAuthority(s string) (string, error) {
	s = strings.TrimRight(strings.TrimSpace(s), "/")
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("callerauth: AuthorityHost %q is not an absolute URL", s)
	}
	// Plain http only for a local emulator: the keys fetched here decide who gets in.
	if u.Scheme != "https" && (u.Scheme != "http" || !isLoopback(u.Hostname())) {
		return "", fmt.Errorf("callerauth: AuthorityHost %q must use https", s)
	}
	return s, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func checkTenant(t string) error {
	switch strings.ToLower(t) {
	case "":
		return errors.New("callerauth: Tenant is required")
	case "common", "organizations", "consumers":
		// Multi-tenant endpoints publish a templated issuer; we validate for exactly one tenant.
		return fmt.Errorf("callerauth: Tenant %q is not a single tenant; use the tenant GUID or domain", t)
	}
	for _, r := range t {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.') {
			return fmt.Errorf("callerauth: Tenant %q is not a tenant GUID or domain", t)
		}
	}
	return nil
}

// Warm fetches the discovery documents and signing keys now, so the first caller does not wait for them.
func (v *Validator) Warm(ctx context.Context) error {
	_, err := v.keys.current(ctx)
	return err
}

// Validate checks raw (the bearer token without the "Bearer " prefix) and returns the caller's identity. A problem
// with the token is an *InvalidTokenError; any other error wraps ErrKeysUnavailable.
func (v *Validator) Validate(ctx context.Context, raw string) (*Identity, error) {
	if raw == "" {
		return nil, invalid("empty token")
	}
	if len(raw) > maxTokenBytes {
		return nil, invalid("token is too large")
	}
	now := v.now()
	sum := maphash.String(v.seed, raw)
	if c, ok := v.cache.Get(sum, now); ok && c.raw == raw {
		// The cache entry outlives nothing it should not, but exp is the contract, so check it on every hit.
		if !now.Before(c.id.ExpiresAt.Add(v.skew)) {
			v.cache.Remove(sum)
			return nil, invalid("token expired")
		}
		id := c.id
		return &id, nil
	}

	tok, err := parse(raw)
	if err != nil {
		return nil, err
	}
	ks, err := v.keys.current(ctx)
	if err != nil {
		return nil, err
	}
	key := ks.keys[tok.kid]
	if key == nil {
		if ks, err = v.keys.refreshForUnknownKid(ctx); err != nil {
			return nil, err
		}
		if key = ks.keys[tok.kid]; key == nil {
			return nil, invalid("unknown signing key")
		}
	}
	v.verifications.Add(1)
	payload, err := tok.jws.Verify(key)
	if err != nil {
		return nil, invalid("invalid signature")
	}
	id, err := v.checkClaims(payload, ks, now)
	if err != nil {
		return nil, err
	}
	until := id.ExpiresAt
	if limit := now.Add(maxCacheLifetime); limit.Before(until) {
		until = limit
	}
	until = until.Add(v.skew)
	v.cache.Add(sum, &cachedIdentity{id: *id, kid: tok.kid, raw: raw}, until)
	return id, nil
}

// forgetKeys drops proven tokens signed by keys that were withdrawn from the JWKS (rare: key rollover or revocation).
func (v *Validator) forgetKeys(kids map[string]bool) {
	v.cache.RemoveFunc(func(_ uint64, c *cachedIdentity) bool { return kids[c.kid] })
}
