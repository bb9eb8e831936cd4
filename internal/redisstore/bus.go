package redisstore

import (
	"context"
	"crypto/rand"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tokeninjector/caddy-token-injector/internal/metrics"
)

// Invalidation kinds: what ended, so every replica's L1 forgets it.
const (
	invalidUser     byte = 'u' // a user's tokens and account (sign-out, a rotated refresh token)
	invalidSessions byte = 'U' // every session of a user (sign out everywhere)
	invalidSession  byte = 's' // one session (logout, revoked)
	// resubscribed is not sent: the subscription (re)started, and whatever was published while it was down was
	// missed, so each L1 forgets what an invalidation could have ended.
	resubscribed byte = 0
)

// bus carries invalidations between replicas over Redis pub/sub: one channel per key_prefix, each message sealed
// (it names a user or a session id), tagged with the sender so a replica skips its own. go-redis resubscribes
// after a reconnect by itself; each confirmed subscription after the first reaches the handlers as resubscribed.
type bus struct {
	c       *Client
	channel string
	origin  [16]byte
	// gen grows with every invalidation handled: an L1 fill that read Redis before one is not kept (see keep).
	gen atomic.Uint64
	// filling is held shared by a fill between its check of gen and its write to L1, and exclusively by deliver,
	// so no invalidation lands between the two.
	filling sync.RWMutex

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
		b.sub = b.c.rdb.Subscribe(context.Background())
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), b.c.timeout)
		// A failure here is retried by go-redis' receive loop; the confirmation then arrives as resubscribed.
		b.c.metrics.RedisCalled(metrics.RedisSubscribe, time.Since(start), b.sub.Subscribe(ctx, b.channel))
		cancel()
		b.done = make(chan struct{})
		go b.listen(b.sub.ChannelWithSubscriptions(), b.done)
	}
}

func (b *bus) listen(ch <-chan any, done chan struct{}) {
	defer close(done)
	subscribed := false
	for m := range ch {
		switch m := m.(type) {
		case *redis.Subscription:
			if m.Kind != "subscribe" {
				continue
			}
			if subscribed { // again, after a drop: what was published meanwhile is lost
				b.deliver(resubscribed, "")
			}
			subscribed = true
		case *redis.Message:
			if kind, value, ok := b.open(m.Payload); ok {
				b.deliver(kind, value)
			}
		}
	}
}

// open returns what a message says, false for one sealed with another key (a misconfigured replica) or our own.
func (b *bus) open(payload string) (byte, string, bool) {
	pt, _, err := b.c.keys.Open([]byte(payload), []byte(b.channel))
	if err != nil || len(pt) < len(b.origin)+1 || string(pt[:len(b.origin)]) == string(b.origin[:]) {
		return 0, "", false
	}
	return pt[len(b.origin)], string(pt[len(b.origin)+1:]), true
}

func (b *bus) deliver(kind byte, value string) {
	b.filling.Lock()
	defer b.filling.Unlock()
	b.gen.Add(1)
	b.mu.RLock()
	defer b.mu.RUnlock()
	for _, h := range b.handlers {
		h(kind, value)
	}
}

// keep runs fill (an L1 write of what was read from Redis) unless an invalidation was handled since gen was read
// (what was read may be what it ended), and reports whether it ran.
func (b *bus) keep(gen uint64, fill func()) bool {
	b.filling.RLock()
	defer b.filling.RUnlock()
	if b.gen.Load() != gen {
		return false
	}
	fill()
	return true
}

// ended runs forget (an L1 deletion of what this replica just ended in Redis) as an incoming invalidation runs:
// a fill that read Redis before the end is then dropped, or removed if it was kept. A replica does not hear its
// own invalidations.
func (b *bus) ended(forget func()) {
	b.filling.Lock()
	defer b.filling.Unlock()
	b.gen.Add(1)
	forget()
}

// publish tells the other replicas that value (of kind) ended. A failure (Redis down) is returned; entries then
// age out of the other L1s by their expiry.
func (b *bus) publish(ctx context.Context, kind byte, value string) error {
	pt := append(append(append([]byte{}, b.origin[:]...), kind), value...)
	msg := b.c.keys.Seal(pt, []byte(b.channel))
	return b.c.do(ctx, metrics.RedisPublish, func(ctx context.Context) error {
		return b.c.rdb.Publish(ctx, b.channel, msg).Err()
	})
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
