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
