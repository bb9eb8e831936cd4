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
	return s.cache.RemoveFunc(func(string, Session) bool { return true })
}

var _ Flusher = (*memoryStore)(nil)
