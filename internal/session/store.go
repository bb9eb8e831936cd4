package session

import (
	"context"
	"errors"
	"time"

	"github.com/tokeninjector/caddy-token-injector/internal/lru"
)

// Session is one signed-in browser.
type Session struct {
	// ID is 256 random bits, base64url; the only thing the cookie carries (sealed).
	ID string
	// UserKey is "<oid>.<tid>" (Entra's homeAccountId), the key every token cache is partitioned by.
	UserKey                            string
	ObjectID, TenantID, Username, Name string
	CreatedAt, LastSeenAt              time.Time
}

// Store keeps sessions server side. Implementations must be safe for concurrent use. Errors are in the signature
// for network tiers (Redis); the Manager treats a failed lookup as "no session". sessiontest.RunStoreTests is the
// suite every implementation passes.
type Store interface {
	// Get returns the session with id, false when it is unknown or expired.
	Get(ctx context.Context, id string) (Session, bool, error)
	// Put stores s under s.ID for ttl, replacing any earlier version. A new session of a user who holds
	// MaxSessionsPerUser ends that user's oldest (by CreatedAt).
	Put(ctx context.Context, s Session, ttl time.Duration) error
	// Touch stores s for ttl like Put, but only while a session with s.ID is stored: a request that read the
	// session just before a logout must not bring it back. A session that is gone is not an error.
	Touch(ctx context.Context, s Session, ttl time.Duration) error
	// Delete forgets id; deleting an unknown id is not an error.
	Delete(ctx context.Context, id string) error
	// DeleteUser forgets every session of userKey ("sign out everywhere") and returns how many it deleted.
	DeleteUser(ctx context.Context, userKey string) (int, error)
}

// ErrBadTTL is returned by Put for a ttl that is not positive.
var ErrBadTTL = errors.New("session: ttl must be positive")

type memoryStore struct {
	cache *lru.Cache[string, Session]
	users userIndex // for MaxSessionsPerUser
	now   func() time.Time
	ends  endCounts // see EndCounter
}

// NewMemoryStore returns a Store holding at most max sessions in memory (the least recently used are evicted
// first), and at most MaxSessionsPerUser of one user (the oldest sign-in is ended first). now defaults to
// time.Now.
func NewMemoryStore(max int, now func() time.Time) Store {
	if max <= 0 {
		max = DefaultMaxSessions
	}
	if now == nil {
		now = time.Now
	}
	return &memoryStore{cache: lru.New[string, Session](max), users: newUserIndex(max), now: now}
}

func (s *memoryStore) Get(_ context.Context, id string) (Session, bool, error) {
	v, ok := s.cache.Get(id, s.now())
	return v, ok, nil
}

func (s *memoryStore) Put(_ context.Context, v Session, ttl time.Duration) error {
	if ttl <= 0 {
		return ErrBadTTL
	}
	if v.ID == "" {
		return errors.New("session: a session needs an ID")
	}
	now := s.now()
	if s.cache.Add(v.ID, v, now.Add(ttl)) > 0 { // an eviction ended another session, which one is not known
		s.ends.all()
	}
	live := func(id string) bool { _, ok := s.cache.Peek(id, now); return ok }
	for _, id := range s.users.add(v, now, live) {
		if s.cache.Remove(id) {
			s.ends.ended(id)
		}
	}
	return nil
}

func (s *memoryStore) Touch(_ context.Context, v Session, ttl time.Duration) error {
	if ttl <= 0 {
		return ErrBadTTL
	}
	now := s.now()
	s.cache.Replace(v.ID, v, now.Add(ttl), now, nil)
	return nil
}

func (s *memoryStore) Delete(_ context.Context, id string) error {
	if s.cache.Remove(id) {
		s.ends.ended(id)
	}
	return nil
}

func (s *memoryStore) DeleteUser(_ context.Context, userKey string) (int, error) {
	if userKey == "" {
		return 0, nil // never "every session without a user"
	}
	s.users.forget(userKey)
	var ended []string
	n := s.cache.RemoveFunc(func(id string, v Session) bool {
		if v.UserKey != userKey {
			return false
		}
		ended = append(ended, id)
		return true
	})
	for _, id := range ended { // counted once gone, never before
		s.ends.ended(id)
	}
	return n, nil
}

// Interface guards
var _ Store = (*memoryStore)(nil)
