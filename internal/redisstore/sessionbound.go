package redisstore

import (
	"context"
	"errors"
	"slices"

	"github.com/redis/go-redis/v9"

	"github.com/tokeninjector/caddy-token-injector/internal/metrics"
	"github.com/tokeninjector/caddy-token-injector/internal/session"
)

// bound ends the user's sessions beyond session.MaxSessionsPerUser, the oldest sign-ins first, and takes out of
// the user's index the names of sessions that ended otherwise (a logout, an expiry), which would otherwise stay
// listed until the index expires. It returns the IDs of the sessions it ended, for the replicas' L1s to forget.
// It runs only on a sign-in that finds the index over the bound, and reads each listed session once.
func (s *Sessions) bound(ctx context.Context, user string) ([]string, error) {
	index := s.indexName(user)(0)
	var ended []string
	err := s.c.do(ctx, metrics.RedisDelete, func(ctx context.Context) error {
		names, err := s.c.rdb.SMembers(ctx, index).Result()
		if err != nil {
			return err
		}
		live, gone, err := s.listed(ctx, names)
		if err != nil {
			return err
		}
		slices.SortStableFunc(live, func(a, b listedSession) int { return a.CreatedAt.Compare(b.CreatedAt) })
		over := live[:max(0, len(live)-session.MaxSessionsPerUser)]
		if len(over)+len(gone) == 0 {
			return nil
		}
		pipe := s.c.rdb.Pipeline()
		for _, l := range over {
			pipe.Del(ctx, l.name)
			gone = append(gone, l.name)
		}
		pipe.SRem(ctx, index, gone) // go-redis sends a []string as its members
		if _, err := pipe.Exec(ctx); err != nil {
			return err
		}
		for _, l := range over {
			ended = append(ended, l.ID)
		}
		return nil
	})
	return ended, err
}

// listedSession is a session found under a name in a user's index.
type listedSession struct {
	session.Session
	name string
}

// listed reads the sessions that names lists: those that live, and the names of those that ended, or no longer open
// (sealed under a key no longer configured).
func (s *Sessions) listed(ctx context.Context, names []string) (live []listedSession, gone []string, err error) {
	pipe := s.c.rdb.Pipeline()
	gets := make([]*redis.StringCmd, len(names))
	for i, name := range names {
		gets[i] = pipe.Get(ctx, name)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, nil, err
	}
	now := s.c.now()
	for i, get := range gets {
		raw, err := get.Bytes()
		if err != nil && !errors.Is(err, redis.Nil) {
			return nil, nil, err
		}
		if pt, _, err := s.c.keys.Open(raw, []byte(names[i])); err == nil { // a missing one (nil) does not open
			if v, ok := liveAt(pt, now); ok {
				live = append(live, listedSession{Session: v.Session, name: names[i]})
				continue
			}
		}
		gone = append(gone, names[i])
	}
	return live, gone, nil
}
