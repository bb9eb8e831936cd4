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
// sealed with an older encryption key, is sealed again with the newest under the newest name, and listed in the
// index indexOf names for it (nil or "": none), so that a user's sign-out still finds it.
func (c *Client) get(ctx context.Context, nameOf func(namer int) string, indexOf func(pt []byte) string) ([]byte, bool, error) {
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
			index := ""
			if indexOf != nil {
				index = indexOf(pt)
			}
			c.reseal(ctx, name, nameOf(0), raw, pt, index)
		}
		return pt, true, nil
	}
	return nil, false, nil
}

// reseal moves a value to the newest key and name, keeping its expiry. It is best effort: the old entry still
// opens until it expires or its key is dropped from the configuration. It must not bring back what ended while it
// ran (a logout deletes both names): the new name is written only if it is free (so of two moves one writes), then
// the old one is dropped only if it still holds what was read, and if not, what was written goes too.
func (c *Client) reseal(ctx context.Context, from, to string, raw, pt []byte, index string) {
	_ = c.do(ctx, metrics.RedisSet, func(ctx context.Context) error {
		ttl, err := c.rdb.PTTL(ctx, from).Result()
		if err != nil || ttl <= 0 {
			return err
		}
		sealed := c.keys.Seal(pt, []byte(to))
		if from == to { // the newest name, sealed with an older key
			return replaceIfUnchanged.Run(ctx, c.rdb, []string{from}, raw, sealed, ttl.Milliseconds()).Err()
		}
		if moved, err := c.rdb.SetNX(ctx, to, sealed, ttl).Result(); err != nil || !moved {
			return err
		}
		if index != "" {
			if err := addToIndex.Run(ctx, c.rdb, []string{index}, to, ttl.Milliseconds()).Err(); err != nil {
				return err
			}
		}
		if dropped, err := deleteIfUnchanged.Run(ctx, c.rdb, []string{from}, raw).Int(); err != nil || dropped == 1 {
			return err
		}
		return c.rdb.Del(ctx, to).Err() // the old value changed or ended meanwhile
	})
}

// The scripts of reseal: KEYS[1] is one name, so each runs in one Cluster slot.
var (
	replaceIfUnchanged = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1`)
	deleteIfUnchanged = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('DEL', KEYS[1])`)
	addToIndex = redis.NewScript(`
redis.call('SADD', KEYS[1], ARGV[1])
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 1`)
)

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
