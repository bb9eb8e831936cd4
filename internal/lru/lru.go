// Package lru is a bounded, sharded, expiry-aware LRU map. The proxy keeps everything it remembers about users in
// one of these (proven caller tokens, downstream tokens), so memory is capped however many users arrive.
package lru

import (
	"hash/maphash"
	"sync"
	"time"
)

// Cache is safe for concurrent use. The zero value is not usable; call New.
type Cache[K comparable, V any] struct {
	seed   maphash.Seed
	shards []shard[K, V]
}

type shard[K comparable, V any] struct {
	mu       sync.Mutex
	items    map[K]*entry[K, V]
	head     entry[K, V] // sentinel: head.next is the most recently used, head.prev the least
	capacity int
}

type entry[K comparable, V any] struct {
	key        K
	value      V
	expires    int64 // unix nanoseconds; 0 never expires
	prev, next *entry[K, V]
}

// entriesPerShard keeps small caches in one shard, so that their capacity is exact.
const entriesPerShard = 256

// New returns a cache holding at most capacity entries (at least 1).
func New[K comparable, V any](capacity int) *Cache[K, V] {
	capacity = max(capacity, 1)
	n := min(max(capacity/entriesPerShard, 1), 64)
	c := &Cache[K, V]{seed: maphash.MakeSeed(), shards: make([]shard[K, V], n)}
	for i := range c.shards {
		s := &c.shards[i]
		s.capacity = capacity / n
		if i < capacity%n {
			s.capacity++
		}
		s.items = make(map[K]*entry[K, V])
		s.head.next, s.head.prev = &s.head, &s.head
	}
	return c
}

func (c *Cache[K, V]) shardFor(k K) *shard[K, V] {
	if len(c.shards) == 1 {
		return &c.shards[0]
	}
	return &c.shards[maphash.Comparable(c.seed, k)%uint64(len(c.shards))]
}

// Get returns the value for k unless it is missing or expired at now. An expired entry is removed.
func (c *Cache[K, V]) Get(k K, now time.Time) (V, bool) {
	s := c.shardFor(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.items[k]
	if !ok {
		var zero V
		return zero, false
	}
	if e.expires != 0 && now.UnixNano() >= e.expires {
		s.remove(e)
		var zero V
		return zero, false
	}
	s.moveToFront(e)
	return e.value, true
}

// Add stores v under k until expires (the zero time means no expiry), evicting the least recently used entry of
// its shard when full. It reports how many entries it evicted.
func (c *Cache[K, V]) Add(k K, v V, expires time.Time) (evicted int) {
	var exp int64
	if !expires.IsZero() {
		exp = expires.UnixNano()
	}
	s := c.shardFor(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.items[k]; ok {
		e.value, e.expires = v, exp
		s.moveToFront(e)
		return 0
	}
	for len(s.items) >= s.capacity {
		s.remove(s.head.prev)
		evicted++
	}
	e := &entry[K, V]{key: k, value: v, expires: exp}
	s.items[k] = e
	s.pushFront(e)
	return evicted
}

// Remove deletes k and reports whether it was present.
func (c *Cache[K, V]) Remove(k K) bool {
	s := c.shardFor(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.items[k]
	if ok {
		s.remove(e)
	}
	return ok
}

// RemoveFunc deletes every entry for which match returns true and returns how many it deleted. It holds one shard
// lock at a time, so it is for rare operations such as a logout.
func (c *Cache[K, V]) RemoveFunc(match func(K, V) bool) int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		for k, e := range s.items {
			if match(k, e.value) {
				s.remove(e)
				n++
			}
		}
		s.mu.Unlock()
	}
	return n
}

// Len returns the number of entries, expired ones included until they are touched or evicted.
func (c *Cache[K, V]) Len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		n += len(s.items)
		s.mu.Unlock()
	}
	return n
}

// Capacity returns the most entries the cache holds.
func (c *Cache[K, V]) Capacity() int {
	n := 0
	for i := range c.shards {
		n += c.shards[i].capacity
	}
	return n
}

func (s *shard[K, V]) pushFront(e *entry[K, V]) {
	e.prev, e.next = &s.head, s.head.next
	s.head.next.prev = e
	s.head.next = e
}

func (s *shard[K, V]) moveToFront(e *entry[K, V]) {
	if s.head.next == e {
		return
	}
	e.prev.next, e.next.prev = e.next, e.prev
	s.pushFront(e)
}

func (s *shard[K, V]) remove(e *entry[K, V]) {
	e.prev.next, e.next.prev = e.next, e.prev
	e.prev, e.next = nil, nil
	delete(s.items, e.key)
}
