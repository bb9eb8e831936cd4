package lru

import (
	"testing"
	"time"
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
	c.SetLimits(0, 600) // shrinking evicts the least recently used: a
	if _, ok := c.Get("a", time.Now()); ok || c.Cost() != 500 {
		t.Fatalf("after shrinking: a kept=%v, cost %d, want a evicted and 500", ok, c.Cost())
	}
}
