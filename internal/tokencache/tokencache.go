// Package tokencache stores downstream access tokens per validated user and scope set. Cache is the one interface
// every tier implements: the bounded in-memory Memory today, a shared encrypted tier behind it later.
package tokencache

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/tokeninjector/caddy-token-injector/internal/lru"
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

// Key names a cache entry: a user, proven by a validated token or a sealed session, and a scope set.
type Key struct {
	// User is the validated identity, "<oid>.<tid>" (Entra's home account id).
	User string
	// Scopes is the normalized scope set (see NormalizeScopes).
	Scopes string
}

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

// Cache stores tokens. Implementations must be safe for concurrent use; errors are for tiers that can fail
// (a network store), and a caller treats a failing Get as a miss.
type Cache interface {
	Get(ctx context.Context, k Key) (Token, bool, error)
	Set(ctx context.Context, k Key, t Token) error
	// GetAccount and SetAccount keep a signed-in user's refresh state, by user key.
	GetAccount(ctx context.Context, user string) (Account, bool, error)
	SetAccount(ctx context.Context, user string, a Account) error
	// DeleteUser forgets every token and the account of a user (sign-out).
	DeleteUser(ctx context.Context, user string) error
	// Len is the number of entries held in this process.
	Len() int
}

// Memory is the in-process tier: bounded by entry count, least recently used evicted first, and each entry dropped
// once its token is within the safety margin of expiry.
type Memory struct {
	entries  *lru.Cache[Key, Token]
	accounts *lru.Cache[string, Account]
	margin   time.Duration
	now      func() time.Time
}

// NewMemory returns a cache of at most maxEntries tokens. An entry is dropped margin before its token expires.
func NewMemory(maxEntries int, margin time.Duration, now func() time.Time) *Memory {
	if now == nil {
		now = time.Now
	}
	return &Memory{entries: lru.New[Key, Token](maxEntries), accounts: lru.New[string, Account](maxEntries),
		margin: margin, now: now}
}

// Get returns the token for k if it is still usable.
func (m *Memory) Get(_ context.Context, k Key) (Token, bool, error) {
	t, ok := m.entries.Get(k, m.now())
	return t, ok, nil
}

// Set stores t under k until margin before it expires.
func (m *Memory) Set(_ context.Context, k Key, t Token) error {
	m.entries.Add(k, t.withHeader(), t.ExpiresOn.Add(-m.margin))
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

// DeleteUser forgets every entry and the account of user.
func (m *Memory) DeleteUser(_ context.Context, user string) error {
	m.entries.RemoveFunc(func(k Key, _ Token) bool { return k.User == user })
	m.accounts.Remove(user)
	return nil
}

// Len returns the number of token entries held.
func (m *Memory) Len() int { return m.entries.Len() }

// Capacity returns the configured bound.
func (m *Memory) Capacity() int { return m.entries.Capacity() }

var _ Cache = (*Memory)(nil)
