// Package lru is a bounded, sharded, expiry-aware LRU map. The proxy keeps everything it remembers about users in
// one of these (proven caller tokens, downstream tokens), so memory is capped however many users arrive.
//
// Recency is kept as CLOCK's second chance does: a hit only marks its entry as used, and eviction, taking the
// least recently inserted entry, moves a used one to the front instead (unmarked) and takes the next. So a hit
// writes to its own entry alone, not to its neighbours' and the list head's (cache misses on every request of a
// large cache), and an entry used since it was last passed over is never evicted before one that was not.
package lru

import (
	"hash/maphash"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// Cache is safe for concurrent use. The zero value is not usable; call New.
type Cache[K comparable, V any] struct {
	seed   maphash.Seed
	table  atomic.Pointer[table[K, V]]
	resize sync.Mutex // serializes SetCapacity
	hooks  *Hooks[V]  // nil: none (SetHooks)
}

// table is one generation of shards. SetCapacity replaces it; a retired table's shards refuse use.
type table[K comparable, V any] struct {
	shards []shard[K, V]
}

type shard[K comparable, V any] struct {
	mu       sync.Mutex
	items    index[K, V] // by the key's seeded hash (Cache.hash); the entry holds the key itself
	head     entry[K, V] // sentinel: head.next is the most recently used, head.prev the least
	capacity int
	maxCost  int64 // 0: no bound on the entries' total cost
	cost     int64 // total cost of the entries held
	retired  bool  // its entries moved to a newer table; look the table up again
	hooks    *Hooks[V]
}

type entry[K comparable, V any] struct {
	key        K
	hash       uint64 // Cache.hash(key), kept so a resize moves the entry without hashing it again
	value      V
	expires    int64 // unix nanoseconds; 0 never expires
	cost       int64 // what the entry counts against its shard's maxCost (AddWeighted); 0 for Add
	used       bool  // hit since it was inserted or last given its second chance
	prev, next *entry[K, V]
}

// entriesPerShard keeps small caches in one shard, so that their capacity is exact.
const entriesPerShard = 256

// New returns a cache holding at most capacity entries (at least 1).
func New[K comparable, V any](capacity int) *Cache[K, V] {
	c := &Cache[K, V]{seed: maphash.MakeSeed()}
	c.table.Store(newTable[K, V](capacity, 0, nil))
	return c
}

// NewWeighted returns a cache bounded by the total cost of its entries (AddWeighted), such as their bytes, and by
// maxEntries unless that is 0. Like the entry bound, maxCost is split evenly over the shards.
func NewWeighted[K comparable, V any](maxEntries int, maxCost int64) *Cache[K, V] {
	c := &Cache[K, V]{seed: maphash.MakeSeed()}
	c.table.Store(newTable[K, V](maxEntries, max(maxCost, 1), nil))
	return c
}

// costPerShard sizes the shards of a cache bounded only by cost, as if each entry cost this much.
const costPerShard = entriesPerShard * 2048

func newTable[K comparable, V any](capacity int, maxCost int64, hooks *Hooks[V]) *table[K, V] {
	if maxCost > 0 && capacity <= 0 {
		capacity = math.MaxInt
	}
	capacity = max(capacity, 1)
	n := min(max(capacity/entriesPerShard, 1), 64)
	if maxCost > 0 {
		n = min(n, max(int(maxCost/costPerShard), 1))
	}
	t := &table[K, V]{shards: make([]shard[K, V], n)}
	for i := range t.shards {
		s := &t.shards[i]
		s.capacity = capacity / n
		if i < capacity%n {
			s.capacity++
		}
		s.maxCost = maxCost / int64(n)
		s.hooks = hooks
		s.head.next, s.head.prev = &s.head, &s.head
	}
	return t
}

func (t *table[K, V]) shardFor(h uint64) *shard[K, V] {
	if len(t.shards) == 1 {
		return &t.shards[0]
	}
	return &t.shards[h%uint64(len(t.shards))]
}

// hash is k's seeded hash. A lookup computes it once: its low bits pick the shard, its high bits the slot in the
// shard's index, which keys entries by it alone (hashing a key of three strings again would be most of a
// lookup). Two keys that share it share a slot: the entry there is compared with the key, so a collision is a
// miss, and an Add takes the slot, as an eviction would.
func (c *Cache[K, V]) hash(k K) uint64 { return maphash.Comparable(c.seed, k) }

// lock returns the shard of the current table for hash h, locked.
func (c *Cache[K, V]) lock(h uint64) *shard[K, V] {
	for {
		s := c.table.Load().shardFor(h)
		s.mu.Lock()
		if !s.retired {
			return s
		}
		s.mu.Unlock()
	}
}

// Get returns the value for k unless it is missing or expired at now. An expired entry is removed.
func (c *Cache[K, V]) Get(k K, now time.Time) (V, bool) {
	h := c.hash(k)
	s := c.lock(h)
	defer s.mu.Unlock()
	e := s.items.get(h)
	if e == nil || e.key != k {
		var zero V
		return zero, false
	}
	if e.expires != 0 && now.UnixNano() >= e.expires {
		s.drop(e)
		var zero V
		return zero, false
	}
	if !e.used { // a hit on a marked entry writes nothing
		e.used = true
	}
	return e.value, true
}

// Peek is Get without the use: it marks nothing, so what only checks that an entry is there (a store listing a
// user's sessions) does not keep the entry from eviction.
func (c *Cache[K, V]) Peek(k K, now time.Time) (V, bool) {
	h := c.hash(k)
	s := c.lock(h)
	defer s.mu.Unlock()
	e := s.items.get(h)
	if e == nil || e.key != k || e.expires != 0 && now.UnixNano() >= e.expires {
		var zero V
		return zero, false
	}
	return e.value, true
}

// Add stores v under k until expires (the zero time means no expiry), evicting the least recently used entry of
// its shard (as the second chance judges it: see the package comment) when full. It reports how many entries it
// evicted.
func (c *Cache[K, V]) Add(k K, v V, expires time.Time) (evicted int) {
	return c.AddWeighted(k, v, expires, 0)
}

// AddWeighted is Add for an entry that counts cost against the cache's maxCost (NewWeighted). An entry that costs
// more than a shard may hold is not stored.
func (c *Cache[K, V]) AddWeighted(k K, v V, expires time.Time, cost int64) (evicted int) {
	exp := expiresAt(expires)
	h := c.hash(k)
	s := c.lock(h)
	defer s.mu.Unlock()
	if e := s.items.get(h); e != nil {
		if e.key == k && s.fits(cost) {
			return s.replace(e, k, v, exp, cost)
		}
		s.drop(e) // k's entry, which insert will not store again, or a colliding key's, which this evicts
		if e.key != k {
			evicted++
		}
	}
	return evicted + s.insert(&entry[K, V]{key: k, hash: h, value: v, expires: exp, cost: cost})
}

// Replace stores v under k until expires, as Add does, but only if k is present and unexpired at now and its
// value passes match (nil passes any), and reports whether it did: an update that must not bring back what was
// removed meanwhile, or a compare-and-set.
func (c *Cache[K, V]) Replace(k K, v V, expires, now time.Time, match func(V) bool) bool {
	exp := expiresAt(expires)
	h := c.hash(k)
	s := c.lock(h)
	defer s.mu.Unlock()
	e := s.items.get(h)
	if e == nil || e.key != k || e.expires != 0 && now.UnixNano() >= e.expires || match != nil && !match(e.value) {
		return false
	}
	s.replace(e, k, v, exp, e.cost)
	return true
}

// expiresAt is an entry's expiry as stored: unix nanoseconds, 0 for none (the zero time).
func expiresAt(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// Remove deletes k and reports whether it was present.
func (c *Cache[K, V]) Remove(k K) bool {
	h := c.hash(k)
	s := c.lock(h)
	defer s.mu.Unlock()
	e := s.items.get(h)
	ok := e != nil && e.key == k // not a colliding key's entry
	if ok {
		s.drop(e)
	}
	return ok
}

// RemoveFunc deletes every entry for which match returns true and returns how many it deleted. It holds one shard
// lock at a time, so it is for rare operations such as a logout.
func (c *Cache[K, V]) RemoveFunc(match func(K, V) bool) int {
	n := 0
	c.eachShard(func(s *shard[K, V]) {
		for e := s.head.next; e != &s.head; {
			next := e.next
			if match(e.key, e.value) {
				s.drop(e)
				n++
			}
			e = next
		}
	})
	return n
}

// Len returns the number of entries, expired ones included until they are touched or evicted.
func (c *Cache[K, V]) Len() int {
	n := 0
	c.eachShard(func(s *shard[K, V]) { n += s.items.n })
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

// Cost returns the total cost of the entries held (AddWeighted).
func (c *Cache[K, V]) Cost() int64 {
	var n int64
	c.eachShard(func(s *shard[K, V]) { n += s.cost })
	return n
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
func (c *Cache[K, V]) SetCapacity(n int) { c.SetLimits(n, 0) }

// SetLimits is SetCapacity for a weighted cache: the bounds NewWeighted(maxEntries, maxCost) would have set.
func (c *Cache[K, V]) SetLimits(maxEntries int, maxCost int64) {
	c.resize.Lock()
	defer c.resize.Unlock()
	old := c.table.Load()
	nt := newTable[K, V](maxEntries, maxCost, c.hooks)
	for i := range old.shards {
		old.shards[i].mu.Lock()
		old.shards[i].promoteUsed()
	}
	// Oldest first, round robin over the old shards, so each new shard evicts the least recently used.
	for moved := true; moved; {
		moved = false
		for i := range old.shards {
			s := &old.shards[i]
			if e := s.head.prev; e != &s.head {
				s.remove(e)
				nt.shardFor(e.hash).insert(e)
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

// insert adds e, a key not in s, as the most recently used, making room for it first. It returns how many
// entries it evicted.
func (s *shard[K, V]) insert(e *entry[K, V]) (evicted int) {
	if !s.fits(e.cost) {
		return 0
	}
	evicted = s.makeRoom(1, e.cost)
	s.items.put(e.hash, e)
	s.cost += e.cost
	s.pushFront(e)
	return evicted
}

// makeRoom evicts the least recently used entries until s can hold entries more entries and cost more cost: the
// last entry goes unless it is marked used, in which case it is unmarked and moved to the front. It returns how
// many it evicted.
func (s *shard[K, V]) makeRoom(entries int, cost int64) (evicted int) {
	for s.items.n+entries > s.capacity || s.maxCost > 0 && s.cost+cost > s.maxCost {
		if last := s.head.prev; s.takeUse(last) { // its second chance; each is paid for by the hit that marked it
			s.moveToFront(last)
			continue
		}
		s.drop(s.head.prev)
		evicted++
	}
	return evicted
}

// fits reports whether an entry of cost may be stored in s at all.
func (s *shard[K, V]) fits(cost int64) bool { return s.maxCost == 0 || cost <= s.maxCost }

// replace gives k's entry e a new value, expiry and a cost that fits, in place, and marks it used, as a hit does,
// rather than moving it to the front: a move writes to its neighbours and the list head, cold lines in a large
// cache, on every touch of a session (once a minute each) and every token renewal. Then it evicts others while
// s is over its cost bound; e, if it comes up, gets its second chance, and it fits. The entry keeps k as this
// caller has it: a key of strings made anew (a caller's next token, proven) then shares them with the caller's
// next lookups, which compare it by pointer, not byte by byte.
func (s *shard[K, V]) replace(e *entry[K, V], k K, v V, exp, cost int64) (evicted int) {
	s.cost += cost - e.cost
	old := e.value
	e.key, e.value, e.expires, e.cost, e.used = k, v, exp, cost, true
	s.dropped(old)
	return s.makeRoom(0, 0)
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

// promoteUsed moves the entries marked used to the front, in their order, and unmarks them: the recency order
// their hits would have made, for a resize to move entries oldest first.
func (s *shard[K, V]) promoteUsed() {
	for e := s.head.prev; e != &s.head; {
		prev := e.prev
		if s.takeUse(e) {
			s.moveToFront(e)
		}
		e = prev
	}
}

func (s *shard[K, V]) remove(e *entry[K, V]) {
	e.prev.next, e.next.prev = e.next, e.prev
	e.prev, e.next = nil, nil
	s.cost -= e.cost
	s.items.del(e.hash)
}
