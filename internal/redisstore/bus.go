package redisstore

import (
	"context"
	"crypto/rand"
	"sync"

	"github.com/redis/go-redis/v9"
)

// Invalidation kinds: what ended, so every replica's L1 forgets it.
const (
	invalidUser     byte = 'u' // a user's tokens and account (sign-out, a rotated refresh token)
	invalidSessions byte = 'U' // every session of a user (sign out everywhere)
	invalidSession  byte = 's' // one session (logout, revoked)
)

// bus carries invalidations between replicas over Redis pub/sub: one channel per key_prefix, each message sealed
// (it names a user or a session id), tagged with the sender so a replica skips its own. go-redis resubscribes
// after a reconnect by itself.
type bus struct {
	c       *Client
	channel string
	origin  [16]byte

	mu       sync.RWMutex
	handlers []func(kind byte, value string)
	sub      *redis.PubSub
	done     chan struct{}
}

func newBus(c *Client) *bus {
	b := &bus{c: c, channel: c.prefix + "invalidate"}
	_, _ = rand.Read(b.origin[:])
	return b
}

// on adds a handler of incoming invalidations and starts listening with the first one.
func (b *bus) on(h func(kind byte, value string)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.handlers = append(b.handlers, h)
	if b.sub == nil {
		b.sub = b.c.rdb.Subscribe(context.Background(), b.channel)
		b.done = make(chan struct{})
		go b.listen(b.sub.Channel(), b.done)
	}
}

func (b *bus) listen(ch <-chan *redis.Message, done chan struct{}) {
	defer close(done)
	ad := []byte(b.channel)
	for m := range ch {
		pt, _, err := b.c.keys.Open([]byte(m.Payload), ad)
		if err != nil || len(pt) < len(b.origin)+1 || string(pt[:len(b.origin)]) == string(b.origin[:]) {
			continue // another key (a misconfigured replica), or our own
		}
		kind, value := pt[len(b.origin)], string(pt[len(b.origin)+1:])
		b.mu.RLock()
		for _, h := range b.handlers {
			h(kind, value)
		}
		b.mu.RUnlock()
	}
}

// publish tells the other replicas that value (of kind) ended. A failure (Redis down) is returned; entries then
// age out of the other L1s by their expiry.
func (b *bus) publish(ctx context.Context, kind byte, value string) error {
	pt := append(append(append([]byte{}, b.origin[:]...), kind), value...)
	msg := b.c.keys.Seal(pt, []byte(b.channel))
	return b.c.do(ctx, func(ctx context.Context) error { return b.c.rdb.Publish(ctx, b.channel, msg).Err() })
}

// close stops listening.
func (b *bus) close() {
	b.mu.Lock()
	sub, done := b.sub, b.done
	b.sub = nil
	b.mu.Unlock()
	if sub != nil {
		_ = sub.Close()
		<-done
	}
}
