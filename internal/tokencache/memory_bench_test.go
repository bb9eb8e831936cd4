package tokencache

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"
)

// The in-memory tier on the proxy's hot path (a cache hit per request) and its cost per entry. The suite in
// bench/ measures the same with realistic 1.5–2.5 KB tokens of varying length.
//
//	go test -run '^$' -bench Memory -benchmem ./internal/tokencache

const (
	benchEntries  = 100_000
	benchTokenLen = 2048
)

var benchScopes = NormalizeScopes([]string{"https://graph.microsoft.com/User.Read"})

func benchKey(i int) Key {
	return Key{User: UserKey(fmt.Sprintf("be4c0000-0000-4000-8000-%012d", i), "c0ffee00-7e57-4e1a-9d3c-0a1b2c3d4e5f"),
		Scopes: benchScopes}
}

// filledMemory caches n entries, each with its own token of benchTokenLen bytes (as each comes from Entra).
func filledMemory(n int) (*Memory, []Key) {
	m := NewMemory(2*n, time.Minute, nil) // headroom: per-shard capacity must not evict while filling
	body := strings.Repeat("x", benchTokenLen)
	keys := make([]Key, n)
	for i := range keys {
		keys[i] = benchKey(i)
		tok := Token{AccessToken: strings.Clone(body), ExpiresOn: time.Now().Add(time.Hour)}
		_ = m.Set(context.Background(), keys[i], tok)
	}
	return m, keys
}

// BenchmarkMemoryGetHit is one cache hit among 100k entries, from every core at once (the shard locks contend).
func BenchmarkMemoryGetHit(b *testing.B) {
	m, keys := filledMemory(benchEntries)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i = (i + 7919) % len(keys) // a stride, so consecutive hits land in different shards
			if _, ok, _ := m.Get(ctx, keys[i]); !ok {
				b.Error("miss")
				return
			}
		}
	})
}

// BenchmarkMemorySetExisting replaces a token, as a background renewal does.
func BenchmarkMemorySetExisting(b *testing.B) {
	m, keys := filledMemory(benchEntries)
	ctx := context.Background()
	tok := Token{AccessToken: strings.Repeat("y", 2048), ExpiresOn: time.Now().Add(time.Hour)}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i = (i + 7919) % len(keys)
		_ = m.Set(ctx, keys[i], tok)
	}
}

// BenchmarkMemoryBytesPerEntry reports the live heap per entry of a 100k-entry cache beyond the token's own bytes:
// key strings (the handler builds the user key per entry), the LRU entry and map slot, whatever the cache keeps
// besides the token, and Go's rounding of the token's allocation to a size class.
func BenchmarkMemoryBytesPerEntry(b *testing.B) {
	for b.Loop() {
		before := liveHeap()
		m, _ := filledMemory(benchEntries) // the slice of keys is the benchmark's, not the cache's: drop it
		perEntry := (liveHeap()-before)/benchEntries - benchTokenLen
		runtime.KeepAlive(m)
		b.ReportMetric(perEntry, "B/entry")
	}
}

func liveHeap() float64 {
	runtime.GC()
	runtime.GC()
	var s runtime.MemStats
	runtime.ReadMemStats(&s)
	return float64(s.HeapAlloc)
}

// BenchmarkMemoColdHit is a memo hit as a request at 50,000 callers meets it: each caller's memo (in a holder the
// size of a proven caller's identity) and its entry cold, taken in a scattered order, and the token's header copied
// out as the transport writes it upstream. It prices the lines a memo hit reads; BenchmarkColdHit in bench/harness
// measures the same inside the whole handler, on a machine quiet enough to resolve it.
//
//	go test -run '^$' -bench MemoColdHit -count 6 ./internal/tokencache
func BenchmarkMemoColdHit(b *testing.B) {
	const n, stride = 50_000, 7919 // a prime: every caller once per 50,000 hits
	m, keys := filledMemory(n)
	type caller struct {
		identity [30]uint64 // what a proven caller's identity holds besides its memo
		memo     Memo
	}
	callers := make([]*caller, n)
	for i := range callers {
		callers[i] = new(caller)
		if _, ok, _ := m.GetMemo(context.Background(), keys[i], &callers[i].memo); !ok {
			b.Fatal("miss")
		}
	}
	var out [benchTokenLen + 16]byte
	now := time.Now()
	i := 0
	for b.Loop() {
		i = (i + stride) % n
		t, ok := callers[i].memo.Token(keys[i], now)
		if !ok {
			b.Fatal("the memo serves nothing")
		}
		copy(out[:], t.AuthorizationHeader())
	}
}
