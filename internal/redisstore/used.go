package redisstore

import (
	"context"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tokeninjector/caddy-token-injector/internal/metrics"
)

// Used is the sign-in's one-time memory shared by every replica: a state, a code (hashed by the caller) or a
// handoff is accepted once across all of them. Marks live minutes, so only the newest name key is consulted.
type Used struct {
	c *Client
}

// NewUsed returns the one-time memory over c.
func NewUsed(c *Client) *Used { return &Used{c: c} }

// MarkUsed records key as used until expires and reports whether it was new: one SET NX.
func (u *Used) MarkUsed(ctx context.Context, key string, expires time.Time) (bool, error) {
	name := u.c.plainName(0, "used", key)
	var fresh bool
	err := u.c.do(ctx, metrics.RedisSet, func(ctx context.Context) (err error) {
		fresh, err = u.c.rdb.SetNX(ctx, name, 1, u.c.ttlUntil(expires)).Result()
		return
	})
	return fresh, err
}

// Seen reports whether key is marked used.
func (u *Used) Seen(ctx context.Context, key string) (bool, error) {
	name := u.c.plainName(0, "used", key)
	var n int64
	err := u.c.do(ctx, metrics.RedisGet, func(ctx context.Context) (err error) { n, err = u.c.rdb.Exists(ctx, name).Result(); return })
	if errors.Is(err, redis.Nil) {
		err = nil
	}
	return n > 0, err
}
