package lru

import "math/bits"

// index maps a shard's entries by their hash: open addressing with linear probing over a power-of-two table of
// (hash, entry) pairs, at most three quarters full, with deletion by backward shift (no tombstones). It is in
// place of a Go map because of what a lookup reads: one slot's line, then the entry. A Go map reads its header,
// its directory and a table's header before the group that holds the slot, and a group's control word and slot
// may sit on two lines: four or five lines where this reads one, each a cache miss on every request once a
// server's other work has pushed a large cache out of the CPU's caches.
type index[K comparable, V any] struct {
	slots []slot[K, V] // nil until the first put
	n     int          // entries held
	shift uint8        // 64 - log2(len(slots)): a hash's home slot is its top bits
}

type slot[K comparable, V any] struct {
	hash uint64
	e    *entry[K, V] // nil: empty
}

// minSlots is the smallest table, allocated on the first put.
const minSlots = 8

// home is the slot where a lookup for h starts. The top bits: the bottom ones chose the shard (shardFor).
func (x *index[K, V]) home(h uint64) int { return int(h >> x.shift) }

// get returns the entry stored under h, nil if there is none.
func (x *index[K, V]) get(h uint64) *entry[K, V] {
	if i := x.find(h); i >= 0 {
		return x.slots[i].e
	}
	return nil
}

// find returns the slot holding h, -1 if there is none.
func (x *index[K, V]) find(h uint64) int {
	if x.n == 0 {
		return -1
	}
	mask := len(x.slots) - 1
	for i := x.home(h); ; i = (i + 1) & mask {
		switch s := &x.slots[i]; {
		case s.e == nil:
			return -1
		case s.hash == h:
			return i
		}
	}
}

// put stores e under h, which must not be stored already.
func (x *index[K, V]) put(h uint64, e *entry[K, V]) {
	if (x.n+1)*4 > len(x.slots)*3 {
		x.grow()
	}
	mask := len(x.slots) - 1
	i := x.home(h)
	for x.slots[i].e != nil {
		i = (i + 1) & mask
	}
	x.slots[i] = slot[K, V]{hash: h, e: e}
	x.n++
}

// del removes what is stored under h, if anything. The entries after it in its run move back, each as far as
// its home slot allows, so that every entry stays reachable from its home without a tombstone.
func (x *index[K, V]) del(h uint64) {
	i := x.find(h)
	if i < 0 {
		return
	}
	mask := len(x.slots) - 1
	for j := i; ; {
		j = (j + 1) & mask
		if x.slots[j].e == nil {
			break
		}
		// The entry at j may fill the gap at i unless its home lies cyclically in (i, j].
		if k := x.home(x.slots[j].hash); (j > i && (k <= i || k > j)) || (j < i && k <= i && k > j) {
			x.slots[i] = x.slots[j]
			i = j
		}
	}
	x.slots[i] = slot[K, V]{}
	x.n--
}

// grow doubles the table (or allocates the first) and places every entry again.
func (x *index[K, V]) grow() {
	old := x.slots
	size := max(len(old)*2, minSlots)
	x.slots, x.n = make([]slot[K, V], size), 0
	x.shift = uint8(64 - bits.TrailingZeros(uint(size)))
	for _, s := range old {
		if s.e != nil {
			x.put(s.hash, s.e)
		}
	}
}
