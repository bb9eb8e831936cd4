package session

import (
	"cmp"
	"net/http"
	"net/textproto"
	"sync/atomic"
	"time"

	"github.com/tokeninjector/caddy-token-injector/internal/identity"
	"github.com/tokeninjector/caddy-token-injector/internal/lru"
	"github.com/tokeninjector/caddy-token-injector/internal/seal"
	"github.com/tokeninjector/caddy-token-injector/internal/tokencache"
)

// Caller is the signed-in user a session cookie proves, as Manager.Caller returns it. It is shared by every
// request with the same cookie: treat it as read-only. What a request reads (UserKey, Placeholders, Memo, the
// User's tenant) is in its first 64 bytes.
type Caller struct {
	UserKey string // "<oid>.<tid>", the token cache's partition
	// Placeholders names the user for access logs, built once per opened cookie.
	Placeholders identity.Placeholders
	// Memo remembers the downstream token this session's last request was served, so that its next one costs
	// no token-cache lookup (see tokencache.Memo). The opened cookie's, it lives as long as the cookie is
	// remembered.
	Memo      *tokencache.Memo
	User      identity.User
	SessionID string
}

// openedCookie is a session cookie opened before: the proof that a cookie is this one (its tag's second half;
// the cache's key is the first), what the last liveness check found, and the caller its session names. It is 192
// bytes, a size class whose objects start on a cache line, and a request reads two lines of it: the checks, then
// the caller's first 64 bytes (TestOpenedCookieIsThreeCacheLines).
type openedCookie struct {
	proof     uint64
	absEnd    int64           // the session's absolute end (unix ns)
	lastSeen  atomic.Int64    // the session's LastSeenAt (unix ns) as the last check found or wrote it
	checkedAt atomic.Int64    // when that check was (unix ns)
	checked   atomic.Uint64   // 1 + the store's Ends(shard) before that check; 0 when the store counts no ends
	memo      tokencache.Memo // caller.Memo
	shard     EndShard        // ShardOf(caller.SessionID)
	caller    Caller
	createdAt int64 // the session's CreatedAt (unix ns)
	_         [8]byte
}

// opened remembers the cookies a Manager has opened, by a keyed tag of the cookie's value (seal.Tag, as proven
// caller tokens are remembered), until the absolute expiry sealed in each; it keeps no copy of the value. Opening
// a cookie (base64, AES-GCM) happens once per session and Manager; afterwards a request costs a tag and a lookup
// here. The store's Get is the liveness check that makes revocation work: a session the store no longer has
// (Destroy, DestroyUser, a logout on another replica, eviction) is refused on the next request, and its entry
// here dropped. A store that counts its ends (EndCounter) is asked only when the count of the session's shard
// moved since the last check, when the last check is a minute old, or when the session is due a touch or looks
// expired; otherwise the session cannot have ended there, and the memo answers from that check. (Another route
// sharing the store may end sessions earlier, by shorter timeouts of its own; the minute bounds how late that is
// seen, as it bounds the idle timeout's precision.)
type opened struct {
	tags  seal.Tagger
	cache *lru.Cache[uint64, *openedCookie]
}

func newOpened(maxEntries int) (*opened, error) {
	tags, err := seal.NewTagger()
	if err != nil {
		return nil, err
	}
	return &opened{tags: tags, cache: lru.New[uint64, *openedCookie](maxEntries)}, nil
}

// get returns the cookie v as opened before, if it was, and v's tag.
func (o *opened) get(v string, now time.Time) (*openedCookie, seal.Tag, bool) {
	tag := o.tags.Of(v)
	c, ok := o.cache.Get(tag.Key(), now)
	return c, tag, ok && c.proof == tag.Proof()
}

func (o *opened) forget(v string) { o.cache.Remove(o.tags.Of(v).Key()) }

// Caller is Authenticate for the request path: the caller r's session cookie proves, without allocating once
// the cookie has been opened. Its errors are Authenticate's.
func (m *Manager) Caller(r *http.Request) (*Caller, error) {
	c, err := m.find(r, true)
	if err != nil {
		return nil, err
	}
	return &c.caller, nil
}

// find returns the cookie behind r's valid session, as remembered; with touch, it refreshes the session's
// LastSeenAt in the store at most once a minute. Without one it returns ErrNoSession, or the store's last error
// when the store could not be asked.
func (m *Manager) find(r *http.Request, touch bool) (*openedCookie, error) {
	name := m.CookieName(r)
	now := m.cfg.Now()
	var storeErr error
	// A sibling host may set a cookie of the same name (not with __Host-), so every one is tried.
	for _, line := range r.Header["Cookie"] {
		for v, rest, found := nextCookie(line, name); found; v, rest, found = nextCookie(rest, name) {
			c, err := m.resolve(r, v, now, touch)
			if err == nil {
				return c, nil
			}
			if err != ErrNoSession {
				storeErr = err
			}
		}
	}
	return nil, cmp.Or(storeErr, ErrNoSession)
}

// resolve returns the cookie value v, opened, if the store has its session and the session has not expired.
func (m *Manager) resolve(r *http.Request, v string, now time.Time, touch bool) (*openedCookie, error) {
	c, tag, hit := m.opened.get(v, now)
	var id string
	var shard EndShard
	if hit {
		shard = c.shard
	} else {
		var ok bool
		if id, ok = m.openCookie(v, now); !ok {
			return nil, ErrNoSession
		}
		shard = ShardOf(id)
	}
	var ends uint64
	if m.ends != nil {
		ends = m.ends.Ends(shard) + 1 // read before the Get, so an end during it is not missed
	}
	if hit {
		if m.stillLive(c, ends, now.UnixNano(), touch) {
			return c, nil
		}
		id = c.caller.SessionID
	}
	s, found, err := m.store.Get(r.Context(), id)
	switch {
	case err != nil:
		return nil, err // the store could not be asked: nobody is signed out, the memo stays
	case !found || s.ID != id || hit && s.UserKey != c.caller.UserKey:
		if hit {
			m.opened.cache.Remove(tag.Key())
		}
		return nil, ErrNoSession
	case m.expired(s, now):
		_ = m.store.Delete(r.Context(), id)
		m.opened.cache.Remove(tag.Key())
		return nil, ErrNoSession
	}
	if touch && now.Sub(s.LastSeenAt) >= touchInterval {
		s.LastSeenAt = now
		_ = m.store.Touch(r.Context(), s, m.ttl(s, now)) // a failed touch costs at most a minute of idle time
	}
	if !hit {
		c = m.remember(tag, s, shard)
	}
	c.lastSeen.Store(s.LastSeenAt.UnixNano())
	c.checkedAt.Store(now.UnixNano())
	c.checked.Store(ends)
	return c, nil
}

// remember keeps the cookie tagged tag, just opened for s, until s's absolute end.
func (m *Manager) remember(tag seal.Tag, s Session, shard EndShard) *openedCookie {
	absEnd := s.CreatedAt.Add(m.cfg.AbsoluteTimeout)
	c := &openedCookie{proof: tag.Proof(), absEnd: absEnd.UnixNano(), shard: shard, caller: callerOf(s),
		createdAt: s.CreatedAt.UnixNano()}
	c.caller.Memo = &c.memo
	m.opened.cache.Add(tag.Key(), c, absEnd)
	return c
}

// stillLive reports whether c's session is live without asking the store: its last check, less than
// touchInterval ago, was at the store's current count of ends (see EndCounter), the session is not expired by
// what that check found, and no touch is due. Otherwise the store decides, as it may know a later touch.
func (m *Manager) stillLive(c *openedCookie, ends uint64, now int64, touch bool) bool {
	seen := c.lastSeen.Load()
	return ends != 0 && c.checked.Load() == ends && now-c.checkedAt.Load() < int64(touchInterval) &&
		now < c.absEnd && now < seen+int64(m.cfg.IdleTimeout) && (!touch || now-seen < int64(touchInterval))
}

// session is the session c was opened for, as its last check found it.
func (c *openedCookie) session() Session {
	u := c.caller.User
	return Session{ID: c.caller.SessionID, UserKey: c.caller.UserKey, ObjectID: u.ObjectID, TenantID: u.TenantID,
		Username: u.Username, Name: u.Name, CreatedAt: time.Unix(0, c.createdAt),
		LastSeenAt: time.Unix(0, c.lastSeen.Load())}
}

func callerOf(s Session) Caller {
	u := identity.User{ObjectID: s.ObjectID, TenantID: s.TenantID, Username: s.Username, Name: s.Name}
	return Caller{SessionID: s.ID, UserKey: s.UserKey, User: u, Placeholders: identity.NewPlaceholders(u)}
}

// nextCookie finds the next cookie named name in a Cookie header line, as http.Request.CookiesNamed reads them
// (pairs separated by ';', spaces trimmed, a quoted value unquoted) but without allocating. rest is the line
// after it.
func nextCookie(line, name string) (value, rest string, found bool) {
	for line != "" {
		var part string
		part, line, _ = cutByte(line, ';')
		n, v, ok := cutByte(textproto.TrimString(part), '=')
		if !ok || n != name {
			continue
		}
		if len(v) > 1 && v[0] == '"' && v[len(v)-1] == '"' {
			v = v[1 : len(v)-1]
		}
		if v != "" {
			return v, line, true
		}
	}
	return "", "", false
}
