package lru

// Hooks tell a cache's owner about its entries' lives, for values that are also reached from outside the cache:
// tokencache's memos, which serve a caller's next request from the entry its last one found, without a lookup.
type Hooks[V any] struct {
	// Dropped is called with a value that left the cache: removed, evicted, expired, or replaced by a newer one
	// (not when a resize moves it). A value stored again under its own key counts as replaced. It runs under the
	// shard's lock, so it must be quick and not use the cache.
	Dropped func(V)
	// UsedOutside reports whether a value was used from outside since it was last asked, and forgets that use.
	// Eviction gives such an entry its second chance, as it gives one a Get marked: a value served from outside
	// is as recently used as one served by Get.
	UsedOutside func(V) bool
}

// SetHooks installs h. Call it before the cache is shared.
func (c *Cache[K, V]) SetHooks(h Hooks[V]) {
	c.resize.Lock()
	defer c.resize.Unlock()
	c.hooks = &h
	t := c.table.Load()
	for i := range t.shards {
		t.shards[i].hooks = c.hooks
	}
}

// drop removes e from s and tells the hooks.
func (s *shard[K, V]) drop(e *entry[K, V]) {
	s.remove(e)
	s.dropped(e.value)
}

// dropped tells the hooks that v left s.
func (s *shard[K, V]) dropped(v V) {
	if s.hooks != nil && s.hooks.Dropped != nil {
		s.hooks.Dropped(v)
	}
}

// takeUse reports whether e was used since it was last asked, by a Get or from outside, and forgets it.
func (s *shard[K, V]) takeUse(e *entry[K, V]) bool {
	used := e.used
	e.used = false
	if s.hooks != nil && s.hooks.UsedOutside != nil && s.hooks.UsedOutside(e.value) {
		used = true
	}
	return used
}
