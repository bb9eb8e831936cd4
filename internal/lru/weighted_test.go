package lru

import (
	"strings"
	"testing"
	"time"
	"unsafe"
)

func TestWeightedBoundsTotalCost(t *testing.T) {
	now := time.Now()
	tests := []struct {
		name        string
		maxEntries  int
		maxCost     int64
		add, cost   int
		wantMaxCost int64
		wantMaxLen  int
	}{
		{"bytes only, one shard", 0, 10_000, 100, 1000, 10_000, 10},
		{"bytes only, many shards", 0, 64 << 20, 100_000, 2000, 64 << 20, 64 << 20 / 2000},
		{"entries bound first", 5, 1 << 20, 100, 100, 500, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := NewWeighted[int, int](tt.maxEntries, tt.maxCost)
			for i := range tt.add {
				c.AddWeighted(i, i, time.Time{}, int64(tt.cost))
			}
			if got := c.Cost(); got > tt.wantMaxCost || got != int64(c.Len()*tt.cost) {
				t.Fatalf("cost %d for %d entries, want at most %d and their sum", got, c.Len(), tt.wantMaxCost)
			}
			if c.Len() > tt.wantMaxLen || c.Len() < tt.wantMaxLen*9/10 {
				t.Fatalf("%d entries held, want at most and near %d", c.Len(), tt.wantMaxLen)
			}
			if _, ok := c.Get(tt.add-1, now); !ok {
				t.Fatal("the newest entry was evicted")
			}
		})
	}
}

func TestWeightedReplaceRemoveAndResize(t *testing.T) {
	c := NewWeighted[string, int](0, 1000)
	c.AddWeighted("a", 1, time.Time{}, 600)
	c.AddWeighted("a", 2, time.Time{}, 300) // replacing frees the old cost
	c.AddWeighted("b", 3, time.Time{}, 600)
	if c.Len() != 2 || c.Cost() != 900 {
		t.Fatalf("len %d cost %d, want 2 and 900", c.Len(), c.Cost())
	}
	c.AddWeighted("huge", 4, time.Time{}, 1001) // more than the cache holds: not stored, nothing evicted
	if _, ok := c.Get("huge", time.Now()); ok || c.Len() != 2 {
		t.Fatalf("an entry costing more than the bound was stored (len %d)", c.Len())
	}
	c.Remove("b")
	if c.Cost() != 300 {
		t.Fatalf("cost %d after removing b, want 300", c.Cost())
	}
	c.AddWeighted("c", 5, time.Time{}, 500)
	c.Get("c", time.Now()) // a's second add counts as a use: so does this, later
	c.SetLimits(0, 600)    // shrinking evicts the least recently used: a
	if _, ok := c.Get("a", time.Now()); ok || c.Cost() != 500 {
		t.Fatalf("after shrinking: a kept=%v, cost %d, want a evicted and 500", ok, c.Cost())
	}
}

// A key added again keeps its entry: the new value, expiry and cost in place, used as a hit would leave it (so it
// outlasts entries not used since), with no allocation (a session's touch once a minute, a token's renewal), and
// a larger cost evicts others, never it.
func TestAddAgainReplacesInPlace(t *testing.T) {
	now := time.Now()
	c := NewWeighted[string, int](3, 1000)
	c.AddWeighted("a", 1, time.Time{}, 100)
	c.AddWeighted("b", 2, time.Time{}, 100)
	c.AddWeighted("c", 3, time.Time{}, 100)
	if n := testing.AllocsPerRun(100, func() { c.AddWeighted("a", 4, now.Add(time.Hour), 100) }); n != 0 {
		t.Fatalf("adding a again allocated %v times, want 0", n)
	}
	if v, ok := c.Get("a", now); !ok || v != 4 {
		t.Fatalf("a = %d, %v after adding it again, want 4", v, ok)
	}
	if _, ok := c.Get("a", now.Add(2*time.Hour)); ok {
		t.Fatal("a outlived the expiry it was added again with")
	}
	c.AddWeighted("a", 5, time.Time{}, 100)
	c.AddWeighted("d", 6, time.Time{}, 100) // full at 3 entries: b, the least recently added, goes; a stays
	if _, ok := c.Get("b", now); ok {
		t.Fatal("b was kept: adding a again did not count as a use of a")
	}
	c.AddWeighted("a", 7, time.Time{}, 901) // 1101 in all: c, the least recent, goes, then d
	if c.Cost() != 901 || c.Len() != 1 {
		t.Fatalf("after a grew: len %d, cost %d, want 1 and 901", c.Len(), c.Cost())
	}
	if v, ok := c.Get("a", now); !ok || v != 7 {
		t.Fatalf("a = %d, %v after it grew, want 7", v, ok)
	}
	c.AddWeighted("a", 8, time.Time{}, 1001) // more than the cache holds: a is not stored
	if _, ok := c.Get("a", now); ok || c.Len() != 0 || c.Cost() != 0 {
		t.Fatalf("an entry costing more than the bound was kept (len %d, cost %d)", c.Len(), c.Cost())
	}
}

// A key added again is kept as the latest caller gave it, so that its strings are the ones that caller's lookups
// hold: comparing them is then a pointer comparison, where two copies of a user key would each be read.
func TestAddAgainKeepsTheNewKey(t *testing.T) {
	c := New[string, int](4)
	const user = "aaaaaaaa-0000-4000-8000-000000000001.tid"
	first, again := strings.Clone(user), strings.Clone(user)
	c.Add(first, 1, time.Time{})
	c.Add(again, 2, time.Time{})
	h := c.hash(again)
	e := c.table.Load().shardFor(h).items.get(h)
	if e == nil || e.value != 2 || unsafe.StringData(e.key) != unsafe.StringData(again) {
		t.Fatal("the entry kept the key it was first added with, not the one it was added again with")
	}
}
