// Package callerauth validates the bearer token a caller presents (an Office add-in SSO token, or a token MSAL.js got
// for the add-in's own web API) before the proxy spends an On-Behalf-Of exchange on it. Tokens are Entra ID access
// tokens for our own app, v1.0 or v2.0, RS256-signed with the tenant's published keys.
package callerauth

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tokeninjector/caddy-token-injector/internal/entra"
	"github.com/tokeninjector/caddy-token-injector/internal/identity"
	"github.com/tokeninjector/caddy-token-injector/internal/lru"
	"github.com/tokeninjector/caddy-token-injector/internal/seal"
	"github.com/tokeninjector/caddy-token-injector/internal/tokencache"
)

const (
	defaultClockSkew    = time.Minute
	defaultFetchTimeout = 10 * time.Second

	// maxCacheLifetime bounds how long a proven token skips signature verification; a key withdrawn from the
	// JWKS stops being trusted at the next key refresh (KeyRefresh) whatever this says.
	maxCacheLifetime = time.Hour

	// maxTokenBytes rejects oversized input before hashing or parsing it. Entra access tokens are a few KB; group
	// overage keeps them well below this.
	maxTokenBytes = 32 << 10
)

// Config configures a Validator. AuthorityHost, Tenant, Audiences and HTTPClient are required.
type Config struct {
	AuthorityHost string        // e.g. https://login.microsoftonline.com (no trailing slash)
	Tenant        string        // tenant GUID or domain; the tenant GUID itself comes from the v2 discovery issuer
	Audiences     []string      // accepted aud values: the app's client id and its App ID URIs
	HTTPClient    *http.Client  // used for discovery and JWKS
	ClockSkew     time.Duration // default 1 minute, applied to exp and nbf
	// MaxCachedBytes bounds the proven tokens remembered (each later request with one costs a tag and a lookup,
	// not an RSA verification) by size: a token counts its identity, about 1 KB (cachedIdentity.cost), and is
	// not kept itself. Default DefaultMaxCachedBytes (64 MiB: about 65,000 callers). A reload that changes it
	// resizes in place.
	MaxCachedBytes int64
	// MaxCachedTokens also bounds them by count. Default 0: the byte bound alone.
	MaxCachedTokens int
	Now             func() time.Time
	FetchTimeout    time.Duration // default 10s, bounds each discovery/JWKS fetch
	// KeyRefresh is how old the signing keys may get before they are fetched again (default 1h): a key Entra
	// withdraws stops being trusted within it, for tokens already proven too.
	KeyRefresh time.Duration
	// AllowedTenants are the tenant ids (tid) whose callers a multi-tenant Tenant (organizations, common) takes;
	// "*" takes any. Required with a multi-tenant Tenant, refused with one directory.
	AllowedTenants []string
}

// Identity is what a valid token says about its caller. Treat Scopes as read-only: it may be shared with the cache.
// The fields every request reads come first (see cachedIdentity).
type Identity struct {
	// UserKey is User.Key(), computed once per proven token rather than on every request.
	UserKey string
	// AuthContext partitions the user's downstream tokens by how the caller authenticated (see authContext).
	AuthContext string
	// Memo remembers the downstream token this caller's last request was served, so that its next one costs no
	// token-cache lookup (see tokencache.Memo). The proven token's, it lives as long as the token is remembered;
	// nil for an Identity not from a Validator.
	Memo *tokencache.Memo
	// Placeholders names the user for access logs, built once per proven token.
	Placeholders identity.Placeholders
	ExpiresAt    time.Time
	identity.User
	Scopes   []string // scp split on spaces
	ClientID string   // azp (v2) or appid (v1): the app that obtained the token
}

// ForbiddenError reports a valid caller this route does not accept: its token lacks every required scope, or was
// issued to a client application that is not allowed, or a signed-in user's tenant is not allowed. The proxy
// answers 403.
type ForbiddenError struct {
	// MissingScope is set when the token lacks the scopes.
	MissingScope bool
	// TenantNotAllowed is set for a signed-in user of a tenant AllowedTenants leaves out. With neither, the
	// client application is not allowed.
	TenantNotAllowed bool
	Description      string
}

func (e *ForbiddenError) Error() string { return "callerauth: forbidden: " + e.Description }

// Rules are a route's conditions on callers whose tokens the Validator proved: validation asks whether a token is
// genuine and for this API, the rules which of those callers the route takes. Validate applies them. A Rules must
// not be copied once used: a proven token remembers the Rules that last took it by their address.
type Rules struct {
	// Scopes are delegated scopes of which the caller's token must carry one (scp). None: any scope of this API,
	// since the audience already confines tokens to it.
	Scopes []string
	// Apps are the client applications (azp or appid) whose tokens are taken. None: any.
	Apps []string

	current atomic.Pointer[conditions] // these rules under the validator's current ones (see under)
}

// Authorize returns a *ForbiddenError unless id meets the rules.
func (r *Rules) Authorize(id *Identity) error {
	if len(r.Scopes) > 0 && !slices.ContainsFunc(id.Scopes, func(s string) bool { return slices.Contains(r.Scopes, s) }) {
		return &ForbiddenError{MissingScope: true,
			Description: "the token carries none of the scopes " + strings.Join(r.Scopes, ", ")}
	}
	if len(r.Apps) > 0 && !slices.ContainsFunc(r.Apps, func(a string) bool { return strings.EqualFold(a, id.ClientID) }) {
		return &ForbiddenError{Description: "tokens of client application " + safe(id.ClientID) + " are not accepted"}
	}
	return nil
}

// InvalidTokenError reports a problem with the token itself; the proxy answers 401 invalid_token. Description is
// specific and safe to show the caller: it never contains the token, and any claim value it quotes is truncated
// printable ASCII without '"' or '\' (the framing quotes are '"': escape them for an RFC 6750 error_description).
type InvalidTokenError struct{ Description string }

func (e *InvalidTokenError) Error() string { return "callerauth: invalid token: " + e.Description }

// ErrKeysUnavailable is wrapped by every error of Validate that is not an *InvalidTokenError: the tenant's discovery
// documents or signing keys could not be had, so the token could not be checked. A fetch that failed also wraps
// an *entra.UnavailableError (retrying may help) or an *entra.MisconfiguredError (only the operator can fix it).
var ErrKeysUnavailable = errors.New("callerauth: tenant signing keys unavailable")

func invalid(format string, args ...any) error {
	return &InvalidTokenError{Description: fmt.Sprintf(format, args...)}
}

// Validator checks caller tokens for one tenant and one app. It is safe for concurrent use.
type Validator struct {
	rules atomic.Pointer[rules] // replaced whole by Update
	now   func() time.Time
	keys  *keyStore
	// cache remembers proven tokens by their tag (seal.Tag): found by its Key, an entry counts only if it kept
	// the same Proof, so two tags that share a key are a miss, never another caller's identity.
	tags   seal.Tagger
	cache  *lru.Cache[uint64, *cachedIdentity] // bounded by bytes; see proven.go
	resize sync.Mutex                          // serializes resizeProven
	limits [2]int64                            // the cache's bounds (entries, bytes), as last applied

	anyCaller     Rules        // the route of a Validate that names none: every proven caller is taken
	verifications atomic.Int64 // RSA signature checks performed; lets tests prove the cache works
	stop          context.CancelFunc
}

// rules are the settings a reload may change.
type rules struct {
	audiences []string
	skew      time.Duration
	tenants   tenantSet // multi-tenant only
}

// TakesTenant reports whether users of tenant tid may call: on a multi-tenant registration, one of
// AllowedTenants; on one directory, any (its authority signs in its own users only, and Validate checks tokens'
// tid against it). Validate applies it to tokens; sign-in sessions are checked with it.
func (v *Validator) TakesTenant(tid string) bool {
	s := v.rules.Load().tenants
	return !s.any && s.ids == nil || s.takes(tid, "")
}

// New checks cfg and returns a Validator. It does no network I/O: keys are fetched on first use.
func New(cfg Config) (*Validator, error) {
	if cfg.HTTPClient == nil {
		return nil, errors.New("callerauth: HTTPClient is required")
	}
	authority, err := entra.CheckAuthorityHost(cfg.AuthorityHost)
	if err != nil {
		return nil, fmt.Errorf("callerauth: AuthorityHost: %w", err)
	}
	if err := entra.CheckTenant(cfg.Tenant); err != nil {
		return nil, fmt.Errorf("callerauth: Tenant: %w", err)
	}
	if cfg.MaxCachedTokens < 0 || cfg.MaxCachedBytes < 0 {
		return nil, errors.New("callerauth: MaxCachedTokens and MaxCachedBytes must not be negative")
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	tags, err := seal.NewTagger()
	if err != nil {
		return nil, fmt.Errorf("callerauth: %w", err)
	}
	life, stop := context.WithCancel(context.Background())
	v := &Validator{
		now:  now,
		tags: tags,
		stop: stop,
	}
	v.keys = &keyStore{
		authority: authority,
		tenant:    cfg.Tenant,
		now:       now,
		onRemoved: v.forgetKeys,
		life:      life,
	}
	if err := v.Update(cfg); err != nil {
		return nil, err
	}
	return v, nil
}

// Update applies the settings a reload may change: the audiences, the clock skew, the HTTP client and the fetch
// timeout. The authority and tenant name the validator and cannot change.
func (v *Validator) Update(cfg Config) error {
	var auds []string
	for _, a := range cfg.Audiences {
		if a = strings.TrimSpace(a); a != "" {
			auds = append(auds, a)
		}
	}
	if len(auds) == 0 {
		return errors.New("callerauth: at least one audience is required")
	}
	if cfg.HTTPClient == nil {
		return errors.New("callerauth: HTTPClient is required")
	}
	if cfg.ClockSkew < 0 || cfg.FetchTimeout < 0 || cfg.KeyRefresh < 0 {
		return errors.New("callerauth: ClockSkew, FetchTimeout and KeyRefresh must not be negative")
	}
	if cfg.MaxCachedTokens < 0 || cfg.MaxCachedBytes < 0 {
		return errors.New("callerauth: MaxCachedTokens and MaxCachedBytes must not be negative")
	}
	tenants, err := newTenantSet(v.keys.tenant, cfg.AllowedTenants)
	if err != nil {
		return err
	}
	v.resizeProven(cfg)
	v.rules.Store(&rules{audiences: auds, skew: cmp.Or(cfg.ClockSkew, defaultClockSkew), tenants: tenants})
	v.keys.fetcher.Store(&fetcher{client: cfg.HTTPClient, timeout: cmp.Or(cfg.FetchTimeout, defaultFetchTimeout),
		refresh: cmp.Or(cfg.KeyRefresh, defaultKeyRefresh)})
	return nil
}

// Close cancels key fetches in flight; Validate fails afterwards.
func (v *Validator) Close() { v.stop() }

// Validate checks raw (the bearer token without the "Bearer " prefix) and returns the caller's identity if route
// takes it (nil: any proven caller). A problem with the token is an *InvalidTokenError, a caller the route does not
// take a *ForbiddenError; any other error wraps ErrKeysUnavailable. The Identity is shared by every request with
// the same token and must not be modified.
func (v *Validator) Validate(ctx context.Context, raw string, route *Rules) (*Identity, error) {
	if raw == "" {
		return nil, invalid("empty token")
	}
	if len(raw) > maxTokenBytes {
		return nil, invalid("token is too large")
	}
	now := v.now()
	if route == nil {
		route = &v.anyCaller
	}
	tag := v.tags.Of(raw)
	if c, ok := v.cache.Get(tag.Key(), now); ok && c.proof == tag.Proof() {
		r := v.rules.Load()
		// The cache entry outlives nothing it should not, but exp is the contract, so check it on every hit.
		if !now.Before(c.id.ExpiresAt.Add(r.skew)) {
			v.cache.Remove(tag.Key())
			return nil, invalid("token expired")
		}
		// Keys due for refresh are refreshed here too, and a proven token counts only while its key does.
		// A reload may have dropped the caller's tenant from the allowed ones.
		if ks, err := v.keys.current(ctx, now); err == nil {
			if counts, err := c.takenUnder(ks, r, route); counts {
				if err != nil {
					return nil, err
				}
				return &c.id, nil
			}
		}
		v.cache.Remove(tag.Key())
	}

	tok, err := parse(raw)
	if err != nil {
		return nil, err
	}
	ks, err := v.keys.current(ctx, now)
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
	id, aud, err := v.checkClaims(payload, ks, now)
	if err != nil {
		return nil, err
	}
	until := id.ExpiresAt
	if limit := now.Add(maxCacheLifetime); limit.Before(until) {
		until = limit
	}
	until = until.Add(v.rules.Load().skew)
	c := &cachedIdentity{id: *id, kid: tok.kid, aud: aud, proof: tag.Proof()}
	c.id.Placeholders, c.id.Memo = identity.NewPlaceholders(c.id.User), &c.memo
	id.Placeholders, id.Memo = c.id.Placeholders, c.id.Memo
	v.remember(tag, c, until)
	// The next hit notes the route's conditions: the rules checkClaims read may have been replaced since.
	if err := route.Authorize(id); err != nil {
		return nil, err
	}
	return id, nil
}

// forgetKeys drops proven tokens signed by keys that were withdrawn from the JWKS (rare: key rollover or revocation).
func (v *Validator) forgetKeys(kids map[string]bool) {
	v.cache.RemoveFunc(func(_ uint64, c *cachedIdentity) bool { return kids[c.kid] })
}
