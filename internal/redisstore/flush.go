package redisstore

import (
	"context"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/tokeninjector/caddy-token-injector/internal/metrics"
	"github.com/tokeninjector/caddy-token-injector/internal/tokencache"
)

// flushedTokens is the invalidation of a token flush (the admin API's): every replica's L1 forgets every token.
const flushedTokens byte = 'T'

// flushBatch is how many key names one SCAN step asks for and one pipeline unlinks.
const flushBatch = 500

// globEscaper quotes what SCAN's MATCH would read as a pattern in a key prefix.
var globEscaper = strings.NewReplacer(`\`, `\\`, "*", `\*`, "?", `\?`, "[", `\[`, "]", `\]`)

// Flush forgets every downstream token under the key prefix, and returns how many it deleted. Accounts stay, so
// sessions get new tokens silently. On a Cluster every master is scanned.
func (t *Tokens) Flush(ctx context.Context) (int, error) {
	var mu sync.Mutex
	deleted := 0
	scan := func(ctx context.Context, node redis.UniversalClient) error {
		n, err := t.flushNode(ctx, node)
		mu.Lock()
		deleted += n
		mu.Unlock()
		return err
	}
	var err error
	if cluster, ok := t.c.rdb.(*redis.ClusterClient); ok {
		err = cluster.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error { return scan(ctx, node) })
	} else {
		err = scan(ctx, t.c.rdb)
	}
	return deleted, err
}

// flushNode unlinks the tokens one node holds, a batch at a time, each batch bounded by the timeout.
func (t *Tokens) flushNode(ctx context.Context, node redis.UniversalClient) (int, error) {
	pattern := globEscaper.Replace(t.c.prefix) + "{*}:t:*"
	deleted := 0
	var cursor uint64
	for {
		var names []string
		err := t.c.do(ctx, metrics.RedisScan, func(ctx context.Context) (err error) {
			names, cursor, err = node.Scan(ctx, cursor, pattern, flushBatch).Result()
			return err
		})
		if err != nil {
			return deleted, err
		}
		if len(names) > 0 {
			err = t.c.do(ctx, metrics.RedisDelete, func(ctx context.Context) error {
				pipe := node.Pipeline()
				for _, name := range names {
					pipe.Unlink(ctx, name) // one key a command: a Cluster's keys are in many slots
				}
				cmds, err := pipe.Exec(ctx)
				for _, c := range cmds {
					deleted += int(c.(*redis.IntCmd).Val())
				}
				return err
			})
			if err != nil {
				return deleted, err
			}
		}
		if cursor == 0 {
			return deleted, nil
		}
	}
}

// Flush forgets every token in Redis and in every replica's L1, and returns how many Redis held.
func (t *TieredCache) Flush(ctx context.Context) (int, error) {
	_, _ = t.l1.Flush(ctx)
	n, err := t.l2.Flush(ctx)
	if err != nil {
		return n, err
	}
	t.bus.ended(func() { _, _ = t.l1.Flush(ctx) }) // fills that read Redis before the flush
	return n, t.bus.publish(ctx, flushedTokens, "")
}

var _ tokencache.Flusher = (*TieredCache)(nil)
