// Package tokencache stores downstream access tokens per validated user and scope set (TokenStore) and signed-in
// users' refresh state (AccountStore). Every tier implements both: the bounded in-memory Memory today, a shared
// encrypted tier behind it later; package tokencachetest holds the suites they pass.
package tokencache

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/tokeninjector/caddy-token-injector/internal/lru"
	"github.com/tokeninjector/caddy-token-injector/internal/metrics"
)

// Token is a downstream access token and its timing.
type Token struct {
	AccessToken string
	ExpiresOn   time.Time
	// RefreshOn is when the token should be renewed in the background while it is still served.
	RefreshOn time.Time

	// header is "Bearer " + AccessToken, built once when the token is cached; AccessToken then shares its bytes.
	header string
}

// bearerPrefix is the Authorization scheme of a downstream token.
const bearerPrefix = "Bearer "

// withHeader returns t with its Authorization header built, AccessToken pointing into it.
func (t Token) withHeader() Token {
	t.header = bearerPrefix + t.AccessToken
	t.AccessToken = t.header[len(bearerPrefix):]
	return t
}

// AuthorizationHeader is the value of the Authorization header that carries the token. For a cached token it is
// built once, so the cache-hit path does not copy a 2 KB token per request.
func (t Token) AuthorizationHeader() string {
	if t.header != "" {
		return t.header
	}
	return bearerPrefix + t.AccessToken
}

// UsableAt reports whether the token may still be forwarded at now, leaving margin for the upstream call.
func (t Token) UsableAt(now time.Time, margin time.Duration) bool {
	return t.AccessToken != "" && now.Add(margin).Before(t.ExpiresOn)
}

// Account is what a signed-in user's session needs to get tokens silently later: MSAL's serialized cache of this
// one account (its refresh token, id token and account record) and the scopes granted at sign-in. It is as
// sensitive as a password; a tier outside the process must encrypt it.
type Account struct {
	MSAL   []byte
	Scopes []string
	// ExpiresOn bounds how long the record is kept: the refresh token's lifetime, at most.
	ExpiresOn time.Time
}

// Key names a cache entry: a user, proven by a validated token or a sealed session, how they authenticated, and
// a scope set.
type Key struct {
	// User is the validated identity, "<oid>.<tid>" (Entra's home account id).
	User string
	// Context is the caller token's authentication context (MFA, authentication contexts, device), so that a
	// token obtained after a step-up never serves a caller that did not take it: empty for tokens without such
	// claims, SessionContext for a sign-in session (whose sign-in may have taken a step-up no bearer token shows).
	Context string
	// Scopes is the normalized scope set (see NormalizeScopes).
	Scopes string
}

// SessionContext is the Context of a sign-in session's tokens. No caller token's context is ever this.
const SessionContext = "session"

// NormalizeScopes returns the canonical form of a scope set: lower-cased, de-duplicated, sorted, space-joined.
// Entra treats scopes case-insensitively, so two routes asking for the same set share entries.
func NormalizeScopes(scopes []string) string {
	s := make([]string, 0, len(scopes))
	for _, sc := range scopes {
		if sc = strings.ToLower(strings.TrimSpace(sc)); sc != "" {
			s = append(s, sc)
		}
	}
	slices.Sort(s)
	return strings.Join(slices.Compact(s), " ")
}

// UserKey returns Entra's home account id for a user, the identity every cache is partitioned by.
func UserKey(objectID, tenantID string) string { return objectID + "." + tenantID }

// TokenStore stores downstream tokens by user and scope set. Implementations must be safe for concurrent use;
// errors are for tiers that can fail (a network store), and a caller treats a failing Get as a miss.
// tokencachetest.RunTokenStoreTests is the suite every implementation passes.
type TokenStore interface {
	// Get returns the token for k, false when there is none still usable.
	Get(ctx context.Context, k Key) (Token, bool, error)
	// Set stores t under k, replacing any earlier token.
	Set(ctx context.Context, k Key, t Token) error
	// DeleteUser forgets every token of user, whatever its scope set (sign-out). An empty user deletes nothing.
	DeleteUser(ctx context.Context, user string) error
	// Len is the number of entries held in this process.
	Len() int
}

// Revoking is a TokenStore shared by replicas that can tell the others that a token they may hold was revoked.
type Revoking interface {
	// SetRevoked is Set for a token that replaces one the upstream revoked (it answered a CAE claims challenge):
	// every other replica drops its copies of the user's tokens and reads the new one from the shared tier.
	SetRevoked(ctx context.Context, k Key, t Token) error
}

// AccountStore keeps a signed-in user's refresh state by user key. Implementations must be safe for concurrent
// use. tokencachetest.RunAccountStoreTests is the suite every implementation passes.
type AccountStore interface {
	// GetAccount returns the user's account record, false when there is none or it expired.
	GetAccount(ctx context.Context, user string) (Account, bool, error)
	// SetAccount stores the user's account record until a.ExpiresOn, replacing any earlier one.
	SetAccount(ctx context.Context, user string, a Account) error
	// SwapAccount stores next if the user's record still holds old's MSAL cache, and reports whether it did
	// (compare-and-set): of two redemptions of one refresh token (two replicas, or one that raced a sign-out),
	// the one that lost keeps what is there, the winner's rotated token or nothing, rather than writing over it.
	SwapAccount(ctx context.Context, user string, old, next Account) (bool, error)
	// DeleteUser forgets the user's account record (sign-out). An empty user deletes nothing.
	DeleteUser(ctx context.Context, user string) error
}

// Cache is both stores, as the acquisition engine uses them; DeleteUser forgets a user's tokens and account.
type Cache interface {
	TokenStore
	AccountStore
}

// Memory is the in-process tier: bounded by entry count, least recently used evicted first, and each entry dropped
// once its token is within the safety margin of expiry. Resize and SetMargin change its settings in place (a
// config reload), keeping what it holds.
type Memory struct {
	entries  *lru.Cache[Key, *record]
	accounts *lru.Cache[string, Account]
	margin   atomic.Int64 // nanoseconds
	now      func() time.Time
	observer metrics.Cache // evictions; nil reports nothing (see SetObserver)
}

// NewMemory returns a cache of at most maxEntries tokens. An entry is dropped margin before its token expires.
func NewMemory(maxEntries int, margin time.Duration, now func() time.Time) *Memory {
	if now == nil {
		now = time.Now
	}
	m := &Memory{entries: lru.New[Key, *record](maxEntries), accounts: lru.New[string, Account](maxEntries), now: now}
	m.entries.SetHooks(lru.Hooks[*record]{Dropped: recordDropped, UsedOutside: recordUsedOutside}) // memo.go
	m.margin.Store(int64(margin))
	return m
}

// Resize bounds the cache to maxEntries tokens (and as many account records), evicting the least recently used
// when it shrinks. What fits stays cached.
func (m *Memory) Resize(maxEntries int) {
	m.entries.SetCapacity(maxEntries)
	m.accounts.SetCapacity(maxEntries)
}

// SetMargin changes how long before its expiry a token is dropped. It applies to tokens stored after the call;
// those already cached keep the margin they were stored with, and leave at the latest when they expire.
func (m *Memory) SetMargin(margin time.Duration) { m.margin.Store(int64(margin)) }

// Get returns the token for k if it is still usable.
func (m *Memory) Get(ctx context.Context, k Key) (Token, bool, error) { return m.GetMemo(ctx, k, nil) }

// Set stores t under k until margin before it expires.
func (m *Memory) Set(_ context.Context, k Key, t Token) error {
	exp := t.ExpiresOn.Add(-time.Duration(m.margin.Load()))
	if n := m.entries.Add(k, newRecord(t, exp), exp); n > 0 && m.observer != nil {
		m.observer.Evicted(n)
	}
	return nil
}

// GetAccount returns the user's account record unless it expired.
func (m *Memory) GetAccount(_ context.Context, user string) (Account, bool, error) {
	a, ok := m.accounts.Get(user, m.now())
	return a, ok, nil
}

// SetAccount stores the user's account record until it expires.
func (m *Memory) SetAccount(_ context.Context, user string, a Account) error {
	m.accounts.Add(user, a, a.ExpiresOn)
	return nil
}

// SwapAccount stores next if the user's record still holds old's MSAL cache.
func (m *Memory) SwapAccount(_ context.Context, user string, old, next Account) (bool, error) {
	same := func(cur Account) bool { return bytes.Equal(cur.MSAL, old.MSAL) }
	return m.accounts.Replace(user, next, next.ExpiresOn, m.now(), same), nil
}

// DeleteUser forgets every entry and the account of user.
func (m *Memory) DeleteUser(_ context.Context, user string) error {
	if user == "" {
		return nil
	}
	m.entries.RemoveFunc(func(k Key, _ *record) bool { return k.User == user })
	m.accounts.Remove(user)
	return nil
}

// Len returns the number of token entries held.
func (m *Memory) Len() int { return m.entries.Len() }

// Interface guards
var (
	_ TokenStore   = (*Memory)(nil)
	_ AccountStore = (*Memory)(nil)
	_ Cache        = (*Memory)(nil)
)

// ErrStoreUnavailable is wrapped by the errors of a shared tier (Redis) that did not answer: a transient failure
// that must never sign anyone out. The contract answers it with 503 temporarily_unavailable.
var ErrStoreUnavailable = errors.New("the shared store is unavailable")

// AppUser is the Key.User of the app's own tokens (client credentials) in tenant: "app:<client id>@<tenant>". It
// can never be a user's key, which is "<oid>.<tid>", so no user's entry or sign-out touches it.
func AppUser(clientID, tenant string) string {
	return "app:" + strings.ToLower(clientID) + "@" + strings.ToLower(tenant)
}
