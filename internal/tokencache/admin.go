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
	return m.entries.RemoveFunc(func(Key, *record) bool { return true }), nil
}

var _ Flusher = (*Memory)(nil)

// FlushAccounts forgets every account record held in this process and returns how many: a replica's L1 in front
// of a shared tier, after it may have missed another replica's sign-out.
func (m *Memory) FlushAccounts() int {
	return m.accounts.RemoveFunc(func(string, Account) bool { return true })
}
