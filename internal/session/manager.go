package session

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"net/http"
	"time"

	"github.com/tokeninjector/caddy-token-injector/internal/seal"
)

// ErrNoSession means a request carries no valid session cookie: none, tampered, expired, or one whose session
// ended. Only a sign-in helps.
var ErrNoSession = errors.New("no valid session")

// Manager issues, reads and ends sessions. It is safe for concurrent use.
type Manager struct {
	cfg    Config
	keys   *seal.Keys
	store  Store
	opened *opened    // cookies opened before (see Caller)
	ends   EndCounter // store, when it counts its ends; else nil
	// cookieAD is the additional data session cookies are sealed with, built once.
	cookieAD []byte
}

// touchInterval is how stale LastSeenAt may get before Load writes it back: one store write a minute per active
// session instead of one per request. The idle timeout is therefore exact to within a minute.
const touchInterval = time.Minute

// The purpose sealed session cookies are bound to.
const cookiePurpose = "session"

// idBytes is the session ID's entropy: 256 bits.
const idBytes = 32

// Load returns the session r's cookie names. A missing, tampered, expired or foreign-key cookie, or one whose
// session the store no longer has, yields (nil, false), never an error. It refreshes LastSeenAt at most once a
// minute.
func (m *Manager) Load(r *http.Request) (*Session, bool) {
	s, err := m.Authenticate(r)
	return s, err == nil
}

// Authenticate is Load telling why there is no session: ErrNoSession, or the store's error when it could not
// be asked (a shared tier that is down), which must not sign anyone out.
func (m *Manager) Authenticate(r *http.Request) (*Session, error) {
	c, err := m.find(r, true)
	if err != nil {
		return nil, err
	}
	s := c.session()
	return &s, nil
}

// lookup finds the valid session behind r's cookie without touching it.
func (m *Manager) lookup(r *http.Request) (Session, bool) {
	c, err := m.find(r, false)
	if err != nil {
		return Session{}, false
	}
	return c.session(), true
}

// openCookie returns the session ID sealed in v unless v does not open or its absolute expiry has passed, which
// is decided without a store lookup.
func (m *Manager) openCookie(v string, now time.Time) (string, bool) {
	pt, err := m.open(v, m.cookieAD)
	if err != nil || len(pt) != 8+idBytes {
		return "", false
	}
	exp := time.Unix(int64(binary.BigEndian.Uint64(pt[:8])), 0)
	if !now.Before(exp) {
		return "", false
	}
	return base64.RawURLEncoding.EncodeToString(pt[8:]), true
}

func (m *Manager) expired(s Session, now time.Time) bool {
	return !now.Before(s.CreatedAt.Add(m.cfg.AbsoluteTimeout)) || !now.Before(s.LastSeenAt.Add(m.cfg.IdleTimeout))
}

// ttl is how long the store keeps s from now: until it would go idle, but never past its absolute end.
func (m *Manager) ttl(s Session, now time.Time) time.Duration {
	return min(m.cfg.IdleTimeout, s.CreatedAt.Add(m.cfg.AbsoluteTimeout).Sub(now))
}

// Create starts a session for s's user: it sets a fresh random ID (any ID in s is ignored, so a session can never
// be fixed by a caller), CreatedAt and LastSeenAt, stores it and sets the cookie. A session r already carried is
// ended, so a new sign-in never leaves the old one behind.
func (m *Manager) Create(w http.ResponseWriter, r *http.Request, s Session) (*Session, error) {
	if s.UserKey == "" {
		return nil, errors.New("session: a session needs a user key")
	}
	if old, ok := m.lookup(r); ok {
		_ = m.store.Delete(r.Context(), old.ID)
	}
	raw := make([]byte, 8+idBytes)
	s.ID = randomIDInto(raw[8:])
	now := m.cfg.Now()
	s.CreatedAt, s.LastSeenAt = now, now
	exp := now.Add(m.cfg.AbsoluteTimeout)
	binary.BigEndian.PutUint64(raw[:8], uint64(exp.Unix()))
	if err := m.store.Put(r.Context(), s, m.ttl(s, now)); err != nil {
		return nil, err
	}
	v, err := m.Seal(raw, cookiePurpose)
	if err != nil {
		return nil, err
	}
	http.SetCookie(w, m.cookie(r, v, int(m.cfg.AbsoluteTimeout/time.Second)))
	return &s, nil
}

// Destroy ends r's session: it deletes it from the store and expires the cookie (always, so that a stale cookie
// goes too). It returns the session it ended, if any.
func (m *Manager) Destroy(w http.ResponseWriter, r *http.Request) (*Session, bool) {
	s, ok := m.lookup(r)
	now := m.cfg.Now()
	for _, c := range r.CookiesNamed(m.CookieName(r)) {
		m.opened.forget(c.Value) // the store's Get would refuse it anyway
		if id, valid := m.openCookie(c.Value, now); valid {
			_ = m.store.Delete(r.Context(), id)
		}
	}
	http.SetCookie(w, m.cookie(r, "", -1))
	if !ok {
		return nil, false
	}
	return &s, true
}

// DestroyUser ends every session of userKey in the store ("sign out everywhere") and returns how many it ended.
func (m *Manager) DestroyUser(ctx context.Context, userKey string) (int, error) {
	return m.store.DeleteUser(ctx, userKey)
}
