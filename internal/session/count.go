package session

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
	return s.ended(s.cache.RemoveFunc(func(string, Session) bool { return true }))
}

var _ Flusher = (*memoryStore)(nil)

// EndCounter is a Store that counts what may have ended a session it held: a Delete, a DeleteUser, a Flush, an
// eviction to make room, another replica's logout applied here. While the count stays the same, no session has
// ended here but by its own expiry, so a Manager that found a session at that count need not ask again: a
// remembered cookie then costs one lookup, not two (it still checks the session's idle and absolute ends).
type EndCounter interface {
	// Ends is the count, which only grows. It moves after the session has gone, never before.
	Ends() uint64
}

func (s *memoryStore) Ends() uint64 { return s.ends.Load() }

// ended counts n sessions gone and returns n.
func (s *memoryStore) ended(n int) int {
	if n > 0 {
		s.ends.Add(1)
	}
	return n
}

var _ EndCounter = (*memoryStore)(nil)
