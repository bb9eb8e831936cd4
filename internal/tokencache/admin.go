package tokencache

import (
	"context"

	"github.com/tokeninjector/caddy-token-injector/internal/metrics"
)

// SetObserver makes m report its evictions to o. Call it before m is shared.
func (m *Memory) SetObserver(o metrics.Cache) { m.observer = o }

// Flusher is a TokenStore that can forget every token it holds (the admin API's flush). A tier shared by
// replicas flushes them all. Accounts (signed-in users' refresh state) are kept, so sessions go on and get new
// tokens silently.
type Flusher interface {
	// Flush forgets every token and returns how many this process held.
	Flush(ctx context.Context) (int, error)
}

// Flush forgets every token; accounts stay.
func (m *Memory) Flush(context.Context) (int, error) {
	return m.entries.RemoveFunc(func(Key, Token) bool { return true }), nil
}

var _ Flusher = (*Memory)(nil)
