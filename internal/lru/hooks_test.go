package lru

import (
	"slices"
	"testing"
	"time"
)

// Every way a value leaves the cache tells Dropped, once, with that value; a resize that keeps it does not.
func TestDroppedIsToldOfEveryLeaving(t *testing.T) {
	now := time.Now()
	tests := []struct {
		name string
		act  func(c *Cache[string, int])
		want []int // values dropped
	}{
		{"Remove", func(c *Cache[string, int]) { c.Remove("a") }, []int{1}},
		{"Remove of an absent key", func(c *Cache[string, int]) { c.Remove("zz") }, nil},
		{"RemoveFunc", func(c *Cache[string, int]) { c.RemoveFunc(func(k string, _ int) bool { return k != "a" }) }, []int{2, 3}},
		{"Add again replaces", func(c *Cache[string, int]) { c.Add("a", 10, time.Time{}) }, []int{1}},
		{"Replace", func(c *Cache[string, int]) { c.Replace("b", 20, time.Time{}, now, nil) }, []int{2}},
		{"eviction", func(c *Cache[string, int]) { c.Add("d", 4, time.Time{}) }, []int{1}},
		{"expiry met by Get", func(c *Cache[string, int]) { c.Get("c", now.Add(2*time.Hour)) }, []int{3}},
		{"resize that keeps all", func(c *Cache[string, int]) { c.SetCapacity(100) }, nil},
		{"resize that evicts", func(c *Cache[string, int]) { c.SetCapacity(1) }, []int{1, 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := New[string, int](3)
			var dropped []int
			c.SetHooks(Hooks[int]{Dropped: func(v int) { dropped = append(dropped, v) }})
			c.Add("a", 1, time.Time{})
			c.Add("b", 2, time.Time{})
			c.Add("c", 3, now.Add(time.Hour))
			tt.act(c)
			slices.Sort(dropped)
			if !slices.Equal(dropped, tt.want) {
				t.Fatalf("dropped %v, want %v", dropped, tt.want)
			}
		})
	}
}

// A value used from outside (never by Get) gets the second chance a Get gives, so the cache does not evict what
// its memos keep serving.
func TestUsedOutsideGivesASecondChance(t *testing.T) {
	c := New[string, int](2)
	outside := map[int]bool{}
	c.SetHooks(Hooks[int]{UsedOutside: func(v int) bool {
		used := outside[v]
		outside[v] = false
		return used
	}})
	c.Add("a", 1, time.Time{})
	c.Add("b", 2, time.Time{})
	outside[1] = true // "a", the oldest, served from outside
	c.Add("c", 3, time.Time{})
	if _, ok := c.Get("a", time.Now()); !ok {
		t.Fatal("the entry used from outside was evicted")
	}
	if _, ok := c.Get("b", time.Now()); ok {
		t.Fatal("the unused entry was kept")
	}
	if outside[1] {
		t.Fatal("the outside use was not forgotten once it paid for a second chance")
	}
}
