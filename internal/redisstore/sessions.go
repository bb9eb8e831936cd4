package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tokeninjector/caddy-token-injector/internal/metrics"
	"github.com/tokeninjector/caddy-token-injector/internal/session"
)

// Sessions is the Redis tier of session.Store. A session's key name is a keyed hash of its id; a user's sessions
// are listed in an index under the user's hash tag, so "sign out everywhere" reaches them.
type Sessions struct {
	c *Client
}

// NewSessions returns the session store over c.
func NewSessions(c *Client) *Sessions { return &Sessions{c: c} }

// storedSession is a session as sealed in Redis; Until is its end, checked on read too.
type storedSession struct {
	session.Session
	Until time.Time `json:"until"`
}

func (s *Sessions) sessionName(id string) func(int) string {
	return func(n int) string { return s.c.plainName(n, "s", id) }
}

func (s *Sessions) indexName(user string) func(int) string {
	return func(n int) string { return s.c.name(n, "ss", user) }
}

// indexOf names the index of the user of a session sealed as pt, "" for a session without a user.
func (s *Sessions) indexOf(pt []byte) string {
	var v storedSession
	if json.Unmarshal(pt, &v) != nil || v.UserKey == "" {
		return ""
	}
	return s.indexName(v.UserKey)(0)
}

// Get returns the session with id unless it ended.
func (s *Sessions) Get(ctx context.Context, id string) (session.Session, bool, error) {
	v, _, ok, err := s.get(ctx, id)
	return v, ok, err
}

// get returns the session with id and its end.
func (s *Sessions) get(ctx context.Context, id string) (session.Session, time.Time, bool, error) {
	pt, ok, err := s.c.get(ctx, s.sessionName(id), s.indexOf)
	if err != nil || !ok {
		return session.Session{}, time.Time{}, false, err
	}
	v, live := liveAt(pt, s.c.now())
	if !live || v.ID != id {
		return session.Session{}, time.Time{}, false, nil
	}
	return v.Session, v.Until, true, nil
}

// liveAt returns the session sealed as pt unless it ended by now.
func liveAt(pt []byte, now time.Time) (storedSession, bool) {
	var v storedSession
	return v, json.Unmarshal(pt, &v) == nil && now.Before(v.Until)
}

// Put stores v for ttl and lists it under its user, ending the user's oldest sessions beyond
// session.MaxSessionsPerUser.
func (s *Sessions) Put(ctx context.Context, v session.Session, ttl time.Duration) error {
	_, err := s.put(ctx, v, ttl)
	return err
}

// put is Put; it returns the IDs of the sessions it ended. Should bounding the user's sessions fail, the new
// session is stored all the same, and the user's next sign-in bounds them.
func (s *Sessions) put(ctx context.Context, v session.Session, ttl time.Duration) ([]string, error) {
	if v.ID == "" {
		return nil, errors.New("session: a session needs an ID")
	}
	_, listed, err := s.write(ctx, v, ttl, false)
	if err != nil || listed <= session.MaxSessionsPerUser {
		return nil, err
	}
	ended, _ := s.bound(ctx, v.UserKey)
	return ended, nil
}

// Touch stores v for ttl while its session is in Redis (SET XX): a touch on one replica racing a logout on
// another does not bring the session back.
func (s *Sessions) Touch(ctx context.Context, v session.Session, ttl time.Duration) error {
	_, _, err := s.write(ctx, v, ttl, true)
	return err
}

// write is Put, or with touch Touch, and reports whether the session is stored (a touch of one that ended is
// not) and, after a Put, how many names its user's index lists.
func (s *Sessions) write(ctx context.Context, v session.Session, ttl time.Duration, touch bool) (stored bool, listed int64, err error) {
	if ttl <= 0 {
		return false, 0, session.ErrBadTTL
	}
	pt, err := json.Marshal(storedSession{Session: v, Until: s.c.now().Add(ttl)})
	if err != nil {
		return false, 0, err
	}
	name := s.sessionName(v.ID)(0)
	stored = true
	err = s.c.do(ctx, metrics.RedisSet, func(ctx context.Context) error {
		// Two slots in a Cluster: a pipeline, not a transaction. An index entry without its session, or an index
		// that outlives its sessions, is harmless.
		pipe := s.c.rdb.Pipeline()
		var set *redis.BoolCmd
		var card *redis.IntCmd
		if touch {
			set = pipe.SetXX(ctx, name, s.c.sealed(name, pt), ttl)
		} else {
			pipe.Set(ctx, name, s.c.sealed(name, pt), ttl)
		}
		if v.UserKey != "" {
			index := s.indexName(v.UserKey)(0)
			if !touch {
				pipe.SAdd(ctx, index, name)
				card = pipe.SCard(ctx, index)
			}
			pipe.PExpire(ctx, index, max(ttl, session.DefaultAbsoluteTimeout))
		}
		_, err := pipe.Exec(ctx)
		if set != nil {
			stored = set.Val()
		}
		if card != nil {
			listed = card.Val()
		}
		return err
	})
	return stored, listed, err
}

// Delete forgets id.
func (s *Sessions) Delete(ctx context.Context, id string) error {
	return s.c.del(ctx, s.sessionName(id))
}

// DeleteUser forgets every session of userKey and returns how many it deleted.
func (s *Sessions) DeleteUser(ctx context.Context, userKey string) (int, error) {
	if userKey == "" {
		return 0, nil
	}
	deleted := 0
	for n := range s.c.namers {
		index := s.indexName(userKey)(n)
		err := s.c.do(ctx, metrics.RedisDeleteUser, func(ctx context.Context) error {
			names, err := s.c.rdb.SMembers(ctx, index).Result()
			if err != nil || len(names) == 0 {
				return err
			}
			pipe := s.c.rdb.Pipeline()
			dels := make([]interface{ Val() int64 }, len(names))
			for i, name := range names {
				dels[i] = pipe.Del(ctx, name)
			}
			pipe.Del(ctx, index)
			if _, err := pipe.Exec(ctx); err != nil {
				return err
			}
			for _, d := range dels {
				deleted += int(d.Val())
			}
			return nil
		})
		if err != nil {
			return deleted, err
		}
	}
	return deleted, nil
}

// Interface guards
var _ session.Store = (*Sessions)(nil)
