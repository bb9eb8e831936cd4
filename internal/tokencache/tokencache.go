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
}

// UsableAt reports whether the token may still be forwarded at now, leaving margin for the upstream call.
func (t Token) UsableAt(now time.Time, margin time.Duration) bool {
	return t.AccessToken != "" && now.Add(margin).Before(t.ExpiresOn)
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
	// DeleteUser forgets every scope set of a user (sign-out).
	DeleteUser(ctx context.Context, user string) error
	// Len is the number of entries held in this process.
	Len() int
}

// Memory is the in-process tier: bounded by entry count, least recently used evicted first, and each entry dropped
// once its token is within the safety margin of expiry.
type Memory struct {
	entries *lru.Cache[Key, Token]
	margin  time.Duration
	now     func() time.Time
}

// NewMemory returns a cache of at most maxEntries tokens. An entry is dropped margin before its token expires.
func NewMemory(maxEntries int, margin time.Duration, now func() time.Time) *Memory {
	if now == nil {
		now = time.Now
	}
	return &Memory{entries: lru.New[Key, Token](maxEntries), margin: margin, now: now}
}

// Get returns the token for k if it is still usable.
func (m *Memory) Get(_ context.Context, k Key) (Token, bool, error) {
	t, ok := m.entries.Get(k, m.now())
	return t, ok, nil
}

// Set stores t under k until margin before it expires.
func (m *Memory) Set(_ context.Context, k Key, t Token) error {
	m.entries.Add(k, t, t.ExpiresOn.Add(-m.margin))
	return nil
}

// DeleteUser forgets every entry of user.
func (m *Memory) DeleteUser(_ context.Context, user string) error {
	m.entries.RemoveFunc(func(k Key, _ Token) bool { return k.User == user })
	return nil
}

// Len returns the number of entries held.
func (m *Memory) Len() int { return m.entries.Len() }

// Capacity returns the configured bound.
func (m *Memory) Capacity() int { return m.entries.Capacity() }

var _ Cache = (*Memory)(nil)
