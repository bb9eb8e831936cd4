package lru

import (
	"math/rand/v2"
	"testing"
)

// TestIndexAgreesWithAMap runs random puts, deletes and lookups against an index and a Go map side by side. The
// hashes are drawn so that many share a home slot, and runs wrap around the table's end: the cases where a
// backward shift could strand an entry behind a gap, or move one before its home.
func TestIndexAgreesWithAMap(t *testing.T) {
	for _, tc := range []struct {
		name  string
		hash  func(r *rand.Rand) uint64
		steps int
	}{
		{"spread", func(r *rand.Rand) uint64 { return r.Uint64() }, 20000},
		// Eight top-bit patterns: every hash's home is one of a few slots however large the table grows.
		{"crowded homes", func(r *rand.Rand) uint64 { return uint64(r.IntN(8))<<61 | uint64(r.IntN(64)) }, 20000},
		// Homes at the table's last slots, so that runs wrap to slot 0.
		{"wrapping", func(r *rand.Rand) uint64 { return uint64(0x3f)<<58 | uint64(r.IntN(1<<10)) }, 20000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(1, uint64(len(tc.name))))
			var x index[int, int]
			model := map[uint64]*entry[int, int]{}
			for step := range tc.steps {
				h := tc.hash(r)
				switch op := r.IntN(3); {
				case op == 0 && model[h] == nil:
					e := &entry[int, int]{hash: h, value: step}
					x.put(h, e)
					model[h] = e
				case op == 1:
					x.del(h)
					delete(model, h)
				}
				if got := x.get(h); got != model[h] {
					t.Fatalf("step %d: get(%#x) = %p, want %p", step, h, got, model[h])
				}
				if x.n != len(model) {
					t.Fatalf("step %d: %d entries, want %d", step, x.n, len(model))
				}
			}
			for h, e := range model { // every entry still reachable from its home after all the shifts
				if got := x.get(h); got != e {
					t.Fatalf("get(%#x) = %p, want %p", h, got, e)
				}
			}
			if x.n*4 > len(x.slots)*3 {
				t.Fatalf("%d entries in %d slots: over three quarters full", x.n, len(x.slots))
			}
		})
	}
}

// TestIndexMissOnEmptyAndAbsent: a lookup or delete in an empty index, or of a hash not stored, finds nothing
// and changes nothing.
func TestIndexMissOnEmptyAndAbsent(t *testing.T) {
	var x index[string, int]
	x.del(42)
	if x.get(0) != nil || x.get(42) != nil || x.n != 0 {
		t.Fatal("an empty index found something")
	}
	e := &entry[string, int]{hash: 7}
	x.put(7, e)
	x.del(8)
	if x.get(8) != nil || x.get(7) != e || x.n != 1 {
		t.Fatalf("after deleting an absent hash: get(7) = %p, n = %d", x.get(7), x.n)
	}
}
