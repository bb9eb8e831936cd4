// Package lru is a bounded, sharded, expiry-aware LRU map. The proxy keeps everything it remembers about users in
// one of these (proven caller tokens, downstream tokens), so memory is capped however many users arrive.
package lru

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"
)

// Cache is safe for concurrent use. The zero value is not usable; call New.
type Cache[K comparable, V any] struct {
	seed   maphash.Seed
	table  atomic.Pointer[table[K, V]]
	resize sync.Mutex // serializes SetCapacity
}

// table is one generation of shards. SetCapacity replaces it; a retired table's shards refuse use.
type table[K comparable, V any] struct {
	shards []shard[K, V]
}

type shard[K comparable, V any] struct {
	mu       sync.Mutex
	items    map[K]*entry[K, V]
	head     entry[K, V] // sentinel: head.next is the most recently used, head.prev the least
	capacity int
	retired  bool // its entries moved to a newer table; look the table up again
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
	c := &Cache[K, V]{seed: maphash.MakeSeed()}
	c.table.Store(newTable[K, V](capacity))
	return c
}

func newTable[K comparable, V any](capacity int) *table[K, V] {
	capacity = max(capacity, 1)
	n := min(max(capacity/entriesPerShard, 1), 64)
	t := &table[K, V]{shards: make([]shard[K, V], n)}
	for i := range t.shards {
		s := &t.shards[i]
		s.capacity = capacity / n
		if i < capacity%n {
			s.capacity++
		}
		s.items = make(map[K]*entry[K, V])
		s.head.next, s.head.prev = &s.head, &s.head
	}
	return t
}

func (t *table[K, V]) shardFor(seed maphash.Seed, k K) *shard[K, V] {
	if len(t.shards) == 1 {
		return &t.shards[0]
	}
	return &t.shards[maphash.Comparable(seed, k)%uint64(len(t.shards))]
}

// lock returns k's shard of the current table, locked.
func (c *Cache[K, V]) lock(k K) *shard[K, V] {
	for {
		s := c.table.Load().shardFor(c.seed, k)
		s.mu.Lock()
		if !s.retired {
			return s
		}
		s.mu.Unlock()
	}
}

// Get returns the value for k unless it is missing or expired at now. An expired entry is removed.
func (c *Cache[K, V]) Get(k K, now time.Time) (V, bool) {
	s := c.lock(k)
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
	s := c.lock(k)
	defer s.mu.Unlock()
	if e, ok := s.items[k]; ok {
		e.value, e.expires = v, exp
		s.moveToFront(e)
		return 0
	}
	return s.insert(&entry[K, V]{key: k, value: v, expires: exp})
}

// Remove deletes k and reports whether it was present.
func (c *Cache[K, V]) Remove(k K) bool {
	s := c.lock(k)
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
	c.eachShard(func(s *shard[K, V]) {
		for k, e := range s.items {
			if match(k, e.value) {
				s.remove(e)
				n++
			}
		}
	})
	return n
}

// Len returns the number of entries, expired ones included until they are touched or evicted.
func (c *Cache[K, V]) Len() int {
	n := 0
	c.eachShard(func(s *shard[K, V]) { n += len(s.items) })
	return n
}

// eachShard calls f with each shard of the current table locked, one at a time. If SetCapacity replaces the table
// meanwhile, it goes on in the new table from the start; f must be safe to repeat over entries it has seen.
func (c *Cache[K, V]) eachShard(f func(*shard[K, V])) {
	for {
		t := c.table.Load()
		done := true
		for i := range t.shards {
			s := &t.shards[i]
			s.mu.Lock()
			if s.retired {
				s.mu.Unlock()
				done = false
				break
			}
			f(s)
			s.mu.Unlock()
		}
		if done {
			return
		}
	}
}

// Capacity returns the most entries the cache holds.
func (c *Cache[K, V]) Capacity() int {
	t := c.table.Load()
	n := 0
	for i := range t.shards {
		n += t.shards[i].capacity // set before the table is published, never changed
	}
	return n
}

// SetCapacity changes the bound to n (at least 1), as New(n) would have set it. Shrinking evicts the least recently
// used entries until n remain. The entries move to a new set of shards with every shard locked, so it is for rare
// operations such as a config reload; concurrent calls of the other methods wait, then go on in the new shards.
// Recency is kept within each old shard and interleaved across them, so eviction order is approximate for
// caches of more than one shard, as it always is.
func (c *Cache[K, V]) SetCapacity(n int) {
	c.resize.Lock()
	defer c.resize.Unlock()
	old := c.table.Load()
	nt := newTable[K, V](n)
	for i := range old.shards {
		old.shards[i].mu.Lock()
	}
	// Oldest first, round robin over the old shards, so each new shard evicts the least recently used.
	for moved := true; moved; {
		moved = false
		for i := range old.shards {
			s := &old.shards[i]
			if e := s.head.prev; e != &s.head {
				s.remove(e)
				nt.shardFor(c.seed, e.key).insert(e)
				moved = true
			}
		}
	}
	c.table.Store(nt)
	for i := range old.shards {
		old.shards[i].retired = true
		old.shards[i].mu.Unlock()
	}
}

// insert adds e, a key not in s, as the most recently used, evicting the least recently used entries while s is
// full. It returns how many it evicted.
func (s *shard[K, V]) insert(e *entry[K, V]) (evicted int) {
	for len(s.items) >= s.capacity {
		s.remove(s.head.prev)
		evicted++
	}
	s.items[e.key] = e
	s.pushFront(e)
	return evicted
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
