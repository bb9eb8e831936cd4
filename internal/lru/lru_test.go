package lru

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

func TestCapacityHoldsAndEvictsLeastRecentlyUsed(t *testing.T) {
	now := time.Now()
	for _, capacity := range []int{1, 3, 100, 1000, 10_000} {
		c := New[string, int](capacity)
		for i := range capacity * 3 {
			c.Add(fmt.Sprint(i), i, time.Time{})
		}
		if c.Len() > capacity || c.Capacity() != capacity {
			t.Fatalf("capacity %d: len %d, cap %d", capacity, c.Len(), c.Capacity())
		}
		if _, ok := c.Get(fmt.Sprint(capacity*3-1), now); !ok {
			t.Fatalf("capacity %d: the newest entry was evicted", capacity)
		}
	}
	c := New[string, int](2)
	c.Add("a", 1, time.Time{})
	c.Add("b", 2, time.Time{})
	c.Get("a", now) // a is now the most recent
	c.Add("c", 3, time.Time{})
	if _, ok := c.Get("b", now); ok {
		t.Fatal("b should have been evicted")
	}
	if v, ok := c.Get("a", now); !ok || v != 1 {
		t.Fatal("a should have stayed")
	}
}

func TestSetCapacity(t *testing.T) {
	now := time.Now()
	tests := []struct {
		name           string
		from, to, fill int
		wantLen        int
	}{
		{"shrink one shard", 10, 3, 10, 3},
		{"grow one shard", 3, 10, 3, 3},
		{"shrink many shards to one", 10_000, 5, 10_000, 5},
		{"shrink many shards to fewer", 20_000, 1000, 20_000, 1000},
		{"grow one shard to many", 100, 10_000, 100, 100},
		{"same capacity", 50, 50, 50, 50},
		{"to zero means one", 10, 0, 10, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := New[int, int](tt.from)
			for i := range tt.fill {
				c.Add(i, i, time.Time{})
			}
			c.SetCapacity(tt.to)
			if got, want := c.Capacity(), max(tt.to, 1); got != want {
				t.Fatalf("capacity %d, want %d", got, want)
			}
			if c.Len() != tt.wantLen {
				t.Fatalf("len %d, want %d", c.Len(), tt.wantLen)
			}
			// Recency is exact within a shard: a one-shard cache keeps its most recently used entry.
			if _, ok := c.Get(tt.fill-1, now); !ok && tt.from <= entriesPerShard {
				t.Fatal("the most recently used entry was evicted")
			}
			for i := range tt.fill * 2 { // the new bound holds for new entries too
				c.Add(tt.fill+i, i, time.Time{})
			}
			if c.Len() > max(tt.to, 1) {
				t.Fatalf("len %d over the new capacity %d", c.Len(), tt.to)
			}
		})
	}
}

func TestSetCapacityEvictsLeastRecentlyUsed(t *testing.T) {
	now := time.Now()
	c := New[string, int](4)
	for i, k := range []string{"a", "b", "c", "d"} {
		c.Add(k, i, time.Time{})
	}
	c.Get("a", now) // recency, oldest first: b c d a
	c.SetCapacity(2)
	for k, want := range map[string]bool{"a": true, "d": true, "b": false, "c": false} {
		if _, ok := c.Get(k, now); ok != want {
			t.Errorf("%s kept = %v, want %v", k, ok, want)
		}
	}
}

func TestSetCapacityKeepsExpiry(t *testing.T) {
	now := time.Now()
	c := New[string, int](1000)
	c.Add("k", 1, now.Add(time.Minute))
	c.SetCapacity(5)
	if _, ok := c.Get("k", now); !ok {
		t.Fatal("entry lost")
	}
	if _, ok := c.Get("k", now.Add(time.Minute)); ok {
		t.Fatal("entry outlived its expiry after a resize")
	}
}

func TestSetCapacityConcurrentWithUse(t *testing.T) {
	c := New[int, int](5000)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				k := (i * (g + 1)) % 20_000
				c.Add(k, i, time.Time{})
				c.Get(k, time.Now())
				if i%500 == 0 {
					c.Len()
					c.RemoveFunc(func(k, _ int) bool { return k%97 == 0 })
				}
			}
		}()
	}
	for _, n := range []int{100, 20_000, 3, 5000, 700} {
		c.SetCapacity(n)
		time.Sleep(5 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if c.Len() > 700 {
		t.Fatalf("len %d over capacity 700", c.Len())
	}
}

func TestExpiry(t *testing.T) {
	c := New[string, string](10)
	now := time.Now()
	c.Add("k", "v", now.Add(time.Minute))
	if _, ok := c.Get("k", now.Add(59*time.Second)); !ok {
		t.Fatal("entry gone early")
	}
	if _, ok := c.Get("k", now.Add(time.Minute)); ok {
		t.Fatal("expired entry returned")
	}
	if c.Len() != 0 {
		t.Fatal("expired entry not removed")
	}
}

func TestRemoveFunc(t *testing.T) {
	c := New[string, int](1000)
	for i := range 500 {
		c.Add(fmt.Sprint(i), i, time.Time{})
	}
	if n := c.RemoveFunc(func(_ string, v int) bool { return v%2 == 0 }); n != 250 || c.Len() != 250 {
		t.Fatalf("removed %d, left %d", n, c.Len())
	}
	if !c.Remove("1") || c.Remove("1") {
		t.Fatal("Remove should report presence")
	}
}

// Replace updates a present entry's value and expiry, and stores nothing for a key that is missing, removed or
// expired.
func TestReplace(t *testing.T) {
	c := New[string, string](10)
	now := time.Now()
	c.Add("present", "old", now.Add(time.Minute))
	c.Add("removed", "old", now.Add(time.Minute))
	c.Remove("removed")
	c.Add("expired", "old", now.Add(time.Second))
	later := now.Add(time.Second)
	for k, want := range map[string]bool{"present": true, "removed": false, "expired": false, "missing": false} {
		if got := c.Replace(k, "new", later.Add(time.Hour), later, nil); got != want {
			t.Errorf("Replace(%s) = %v, want %v", k, got, want)
		}
		v, ok := c.Get(k, later)
		if ok != want || ok && v != "new" {
			t.Errorf("after Replace(%s): %q %v", k, v, ok)
		}
	}
	if _, ok := c.Get("present", later.Add(time.Hour-time.Second)); !ok {
		t.Fatal("the replacement's expiry does not count")
	}
	isNew := func(v string) bool { return v == "new" }
	if !c.Replace("present", "newer", later.Add(time.Hour), later, isNew) || c.Replace("present", "x", later.Add(time.Hour), later, isNew) {
		t.Fatal("Replace with a match: the first should pass, the second not")
	}
	if v, _ := c.Get("present", later); v != "newer" {
		t.Fatalf("after a refused match: %q", v)
	}
}

func TestConcurrentUse(t *testing.T) {
	c := New[int, int](512)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 5000 {
				k := (i * (g + 1)) % 2000
				c.Add(k, i, time.Now().Add(time.Hour))
				c.Get(k, time.Now())
				if i%100 == 0 {
					c.Remove(k)
				}
			}
		}()
	}
	wg.Wait()
	if c.Len() > 512 {
		t.Fatalf("len %d over capacity", c.Len())
	}
}

func BenchmarkGetHit(b *testing.B) {
	c := New[string, int](100_000)
	keys := make([]string, 1000)
	for i := range keys {
		keys[i] = fmt.Sprintf("00000000-0000-0000-0000-%012d.tenant", i)
		c.Add(keys[i], i, time.Now().Add(time.Hour))
	}
	now := time.Now()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			c.Get(keys[i%len(keys)], now)
			i++
		}
	})
}

// TestSecondChance: an entry hit since it was inserted outlives the entries that were not, for one round of
// evictions; after that it must be hit again to stay.
func TestSecondChance(t *testing.T) {
	now := time.Now()
	c := New[string, int](3)
	for i, k := range []string{"a", "b", "c"} {
		c.Add(k, i, time.Time{})
	}
	c.Get("a", now)
	steps := []struct{ add, evicted string }{{"d", "b"}, {"e", "c"}, {"f", "a"}}
	for _, st := range steps {
		c.Add(st.add, 0, time.Time{})
		if _, ok := c.Get(st.evicted, now); ok {
			t.Fatalf("after adding %s, %s is still held", st.add, st.evicted)
		}
		if _, ok := c.Get(st.add, now); !ok {
			t.Fatalf("%s was evicted as soon as it was added", st.add)
		}
	}
}

// TestPeekMarksNothing: Peek finds what Get finds, but an entry only peeked at is evicted as one never used.
func TestPeekMarksNothing(t *testing.T) {
	now := time.Now()
	c := New[string, int](2)
	c.Add("a", 1, time.Time{})
	c.Add("b", 2, now.Add(time.Minute))
	if v, ok := c.Peek("a", now); !ok || v != 1 {
		t.Fatalf("Peek(a) = %d, %v", v, ok)
	}
	if _, ok := c.Peek("b", now.Add(time.Minute)); ok {
		t.Fatal("Peek returned an expired entry")
	}
	c.Add("c", 3, time.Time{})
	if _, ok := c.Peek("a", now); ok {
		t.Fatal("an entry only peeked at got a second chance")
	}
}

// TestHashCollisionIsAMiss: entries are found by a seeded hash of their key; should two keys share it, the key whose
// entry is not in the slot gets a miss, never the other key's value; removing it leaves the other entry alone; and
// its own Add takes the slot back. (The token cache and the session store rely on this: a collision must never
// hand one user another user's token or session.)
func TestHashCollisionIsAMiss(t *testing.T) {
	now := time.Now()
	type key struct{ user, scopes string }
	c := New[key, string](10)
	alice, bob := key{"alice.tid", "s"}, key{"bob.tid", "s"}
	// Bob's entry where Alice's key leads, as a collision would put it.
	h := c.hash(alice)
	s := c.lock(h)
	s.insert(&entry[key, string]{key: bob, hash: h, value: "bob's"})
	s.mu.Unlock()
	if v, ok := c.Get(alice, now); ok {
		t.Fatalf("Alice got %q from a slot holding Bob's entry", v)
	}
	if c.Remove(alice) {
		t.Fatal("removing Alice reported an entry")
	}
	if c.Len() != 1 {
		t.Fatal("removing Alice removed the entry in the slot, Bob's")
	}
	if n := c.Add(alice, "alice's", time.Time{}); n != 1 {
		t.Fatalf("Alice's Add took Bob's slot and reported %d evictions, want 1", n)
	}
	if v, ok := c.Get(alice, now); !ok || v != "alice's" {
		t.Fatalf("after Add, Alice got %q, %v; want her own value", v, ok)
	}
}
