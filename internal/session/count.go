package session

import "sync/atomic"

// Counter is a Store that can say how many sessions it holds (for metrics and the admin API's stats).
type Counter interface {
	// Len is the number of sessions held, an expired one until it is next looked up or evicted.
	Len() int
}

func (s *memoryStore) Len() int { return s.cache.Len() }

var _ Counter = (*memoryStore)(nil)

// Flusher is a Store that can forget every session it holds: a replica's L1 in front of a shared tier, after it
// may have missed the other replicas' logouts.
type Flusher interface {
	// Flush forgets every session held and returns how many.
	Flush() int
}

func (s *memoryStore) Flush() int {
	n := s.cache.RemoveFunc(func(string, Session) bool { return true })
	s.users.clear()
	if n > 0 {
		s.ends.all()
	}
	return n
}

var _ Flusher = (*memoryStore)(nil)

// EndCounter is a Store that counts what may have ended its sessions: a Delete, a DeleteUser, a Flush, an
// eviction to make room, another replica's logout applied here. The count is kept per shard of session IDs, so
// that one user's logout does not send every other remembered cookie back to the store. While the count of a
// session's shard stays the same, that session has not ended here but by its own expiry, so a Manager that found
// it at that count need not ask again: a remembered cookie then costs one lookup, not two (the Manager still
// checks the session's idle and absolute ends itself).
type EndCounter interface {
	// Ends is the count of a shard (ShardOf the session's ID), which only grows. It moves after a session has
	// gone, never before.
	Ends(shard EndShard) uint64
}

// EndShard is a shard of session IDs, as an EndCounter counts their ends. A remembered cookie keeps its session's,
// so that asking costs no read of the ID.
type EndShard uint8

// endCounts is an EndCounter's counts, one per shard of session IDs.
type endCounts [256]atomic.Uint64

// ShardOf is id's shard. Session IDs are random, so their first bytes spread them.
func ShardOf(id string) EndShard {
	h := 0
	for i := 0; i < len(id) && i < 8; i++ {
		h = h*31 + int(id[i])
	}
	return EndShard(h)
}

func (e *endCounts) of(s EndShard) uint64 { return e[s].Load() }
func (e *endCounts) ended(id string)      { e[ShardOf(id)].Add(1) }

// all counts an end in every shard: for ends whose sessions are not known one by one (an eviction, a flush).
func (e *endCounts) all() {
	for i := range e {
		e[i].Add(1)
	}
}

func (s *memoryStore) Ends(shard EndShard) uint64 { return s.ends.of(shard) }

var _ EndCounter = (*memoryStore)(nil)
