package session

// Counter is a Store that can say how many sessions it holds (for metrics and the admin API's stats).
type Counter interface {
	// Len is the number of sessions held, an expired one until it is next looked up or evicted.
	Len() int
}

func (s *memoryStore) Len() int { return s.cache.Len() }

var _ Counter = (*memoryStore)(nil)
