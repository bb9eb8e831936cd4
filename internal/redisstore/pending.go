package redisstore

import (
	"context"
	"errors"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/tokeninjector/caddy-token-injector/internal/tokencache"
)

// maxPending bounds the deletions kept while Redis is down; past it the oldest is dropped (and logged).
const maxPending = 10000

// pendingRetry is how often kept deletions are tried again while Redis is down.
const pendingRetry = 250 * time.Millisecond

// pending keeps what ended on this replica while Redis was unreachable (a logout, a sign-out): once Redis answers
// again, each is deleted there and published, so it ends on every replica, not only this one. A goroutine runs
// only while something is kept.
type pending struct {
	c   *Client
	log *zap.Logger

	mu      sync.Mutex
	ops     []pendingOp
	kept    map[pendingKey]bool // what ops holds: one logout repeated (a replayed cookie) is kept once
	dropped int
	running bool
	closed  bool
	done    chan struct{}
	wg      sync.WaitGroup
}

// pendingOp is one ending: del removes it from Redis (idempotent) and says how many entries it removed, then kind
// and value are published.
type pendingOp struct {
	kind  byte
	value string
	del   func(context.Context) (int, error)
}

type pendingKey struct {
	kind  byte
	value string
}

func newPending(c *Client, log *zap.Logger) *pending {
	return &pending{c: c, log: log, done: make(chan struct{}), kept: map[pendingKey]bool{}}
}

// endEverywhere ends value (of kind) here at once (forget), in Redis and on the other replicas (del, then
// published; or when Redis is back, see pending), and here again once Redis answered: a fill of this replica's that
// read Redis before del is then dropped, or removed if it was kept (bus.ended).
func (c *Client) endEverywhere(ctx context.Context, kind byte, value string, forget func(),
	del func(context.Context) (int, error)) (int, error) {
	forget()
	n, err := c.pending.end(ctx, kind, value, del)
	c.bus.ended(forget)
	return n, err
}

// end deletes in Redis and publishes; if Redis cannot be reached, it is kept to be applied when it is back. The
// error is returned either way: the caller answers as it would without the retry.
func (p *pending) end(ctx context.Context, kind byte, value string, del func(context.Context) (int, error)) (int, error) {
	op := pendingOp{kind: kind, value: value, del: del}
	n, err := p.apply(ctx, op)
	if errors.Is(err, tokencache.ErrStoreUnavailable) {
		p.add(op)
	}
	return n, err
}

func (p *pending) apply(ctx context.Context, op pendingOp) (int, error) {
	n, err := op.del(ctx)
	if err != nil {
		return n, err
	}
	return n, p.c.bus.publish(ctx, op.kind, op.value)
}

func (p *pending) add(op pendingOp) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.kept[pendingKey{op.kind, op.value}] {
		return
	}
	if len(p.ops) >= maxPending {
		delete(p.kept, pendingKey{p.ops[0].kind, p.ops[0].value})
		p.ops = p.ops[1:]
		p.dropped++
		if p.dropped == 1 || p.dropped%1000 == 0 {
			// The kind only: the value names a session or a user.
			p.log.Warn("redis is unreachable and too many logouts are waiting for it: the oldest was dropped, "+
				"so it may stay valid on other replicas until it expires",
				zap.Int("waiting", maxPending), zap.Int("dropped", p.dropped), zap.String("kind", string(op.kind)))
		}
	}
	p.ops = append(p.ops, op)
	p.kept[pendingKey{op.kind, op.value}] = true
	if !p.running {
		p.running = true
		p.wg.Add(1)
		go p.retry()
	}
}

// waiting reports whether anything waits for Redis.
func (p *pending) waiting() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.ops) > 0
}

// has reports whether an ending of kind and value waits for Redis.
func (p *pending) has(kind byte, value string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.kept[pendingKey{kind, value}]
}

// retry applies the kept operations, oldest first, until none is left or the client is closed.
func (p *pending) retry() {
	defer p.wg.Done()
	tick := time.NewTicker(pendingRetry)
	defer tick.Stop()
	for {
		select {
		case <-p.done:
			return
		case <-tick.C:
		}
		if p.drain() {
			return
		}
	}
}

// drain applies what is kept until Redis fails again, and reports whether nothing is left (and retry stopped).
func (p *pending) drain() bool {
	for {
		p.mu.Lock()
		if len(p.ops) == 0 {
			p.running, p.dropped = false, 0
			p.mu.Unlock()
			return true
		}
		op, closed := p.ops[0], p.closed
		p.mu.Unlock()
		if closed {
			return true
		}
		ctx, cancel := context.WithTimeout(context.Background(), p.c.timeout)
		_, err := p.apply(ctx, op)
		cancel()
		if errors.Is(err, tokencache.ErrStoreUnavailable) {
			return false
		}
		p.mu.Lock()
		if len(p.ops) > 0 && p.ops[0].value == op.value && p.ops[0].kind == op.kind {
			delete(p.kept, pendingKey{op.kind, op.value})
			p.ops = p.ops[1:]
		}
		p.mu.Unlock()
	}
}

// close stops retrying; what is kept is lost with the process, as it would be without the retry.
func (p *pending) close() {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		close(p.done)
	}
	p.mu.Unlock()
	p.wg.Wait()
}
