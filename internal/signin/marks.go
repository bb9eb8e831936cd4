package signin

import (
	"context"
	"sync"
	"time"

	"github.com/tokeninjector/caddy-token-injector/internal/lru"
)

// UsedStore is a one-time memory shared by replicas.
type UsedStore interface {
	// MarkUsed records key as used until expires and reports whether it was new, atomically.
	MarkUsed(ctx context.Context, key string, expires time.Time) (bool, error)
	// Seen reports whether key is marked used.
	Seen(ctx context.Context, key string) (bool, error)
}

// Marks remembers redeemed states, codes (hashed) and handoffs until they expire, so a response is accepted once
// by this process. Entra's one-time codes cover a replay of a code against another replica; a shared UsedStore
// covers the rest. It is safe for concurrent use.
type Marks struct {
	mu   sync.Mutex
	used *lru.Cache[string, struct{}]
}

// NewMarks returns an empty memory of maxUsed marks.
func NewMarks() *Marks { return newMarks(maxUsed) }

func newMarks(capacity int) *Marks { return &Marks{used: lru.New[string, struct{}](capacity)} }

func (m *Marks) mark(key string, expires, now time.Time) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, seen := m.used.Get(key, now); seen {
		return false
	}
	m.used.Add(key, struct{}{}, expires)
	return true
}

func (m *Marks) seen(key string, now time.Time) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.used.Get(key, now)
	return ok
}

// markUsed records key as used until expires and reports whether it was new: one atomic test-and-set, in the
// shared memory when there is one and it answers.
func (h *Handler) markUsed(key string, expires time.Time) bool {
	if h.cfg.Used != nil {
		// Marked here too, so a replay stays refused by this replica while the shared memory is down.
		if fresh, err := h.cfg.Used.MarkUsed(context.Background(), key, expires); err == nil && !fresh {
			return false
		}
	}
	return h.cfg.Marks.mark(key, expires, h.cfg.Now())
}

// seen reports whether key is marked used; replays are refused without spending the redemption limit.
func (h *Handler) seen(key string) bool {
	if h.cfg.Used != nil {
		if used, err := h.cfg.Used.Seen(context.Background(), key); err == nil && used {
			return true
		}
	}
	return h.cfg.Marks.seen(key, h.cfg.Now())
}
