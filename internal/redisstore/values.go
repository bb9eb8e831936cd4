package redisstore

import (
	"context"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tokeninjector/caddy-token-injector/internal/metrics"
)

// errConflict is a compare-and-set that lost; it is not a failure of Redis.
var errConflict = errors.New("redis: the value changed meanwhile")

// get returns the opened value that nameOf names, trying the newest name key first. A value that does not open
// (another key, tampered, moved from another name) reads as missing. One found under an older name key, or
// sealed with an older encryption key, is sealed again with the newest under the newest name.
func (c *Client) get(ctx context.Context, nameOf func(namer int) string) ([]byte, bool, error) {
	for i := range c.namers {
		name := nameOf(i)
		var raw []byte
		err := c.do(ctx, metrics.RedisGet, func(ctx context.Context) (err error) { raw, err = c.rdb.Get(ctx, name).Bytes(); return })
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			return nil, false, err
		}
		pt, stale, err := c.keys.Open(raw, []byte(name))
		if err != nil {
			continue
		}
		if i > 0 || stale {
			c.reseal(ctx, name, nameOf(0), pt)
		}
		return pt, true, nil
	}
	return nil, false, nil
}

// reseal moves a value to the newest key and name, keeping its expiry. It is best effort: the old entry still
// opens until it expires or its key is dropped from the configuration.
func (c *Client) reseal(ctx context.Context, from, to string, pt []byte) {
	_ = c.do(ctx, metrics.RedisSet, func(ctx context.Context) error {
		ttl, err := c.rdb.PTTL(ctx, from).Result()
		if err != nil || ttl <= 0 {
			return err
		}
		pipe := c.rdb.Pipeline()
		pipe.Set(ctx, to, c.keys.Seal(pt, []byte(to)), ttl)
		if from != to {
			pipe.Del(ctx, from)
		}
		_, err = pipe.Exec(ctx)
		return err
	})
}

// sealed returns pt sealed for the key name.
func (c *Client) sealed(name string, pt []byte) []byte { return c.keys.Seal(pt, []byte(name)) }

// set stores pt sealed under name for ttl.
func (c *Client) set(ctx context.Context, name string, pt []byte, ttl time.Duration) error {
	return c.do(ctx, metrics.RedisSet, func(ctx context.Context) error { return c.rdb.Set(ctx, name, c.sealed(name, pt), ttl).Err() })
}

// del deletes the names under every name key.
func (c *Client) del(ctx context.Context, nameOf func(namer int) string) error {
	return c.do(ctx, metrics.RedisDelete, func(ctx context.Context) error {
		pipe := c.rdb.Pipeline()
		for i := range c.namers {
			pipe.Del(ctx, nameOf(i))
		}
		_, err := pipe.Exec(ctx)
		return err
	})
}
