package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/tokeninjector/caddy-token-injector/internal/dev/entraemu"
	"github.com/tokeninjector/caddy-token-injector/internal/tokencache"
)

// memResult is item 3 for one fill of the plugin's in-memory token cache (tokencache.Memory, the type every
// registration uses), keyed and valued as the handler does.
type memResult struct {
	Inserted, Cap, Held int
	HeapBytes           float64 // live heap the filled cache holds
	TokenLen            float64 // mean token length
	TokenAlloc          float64 // mean heap a token takes (Go rounds allocations up to a size class)
	// Beyond is bytes per held entry beyond the token's own bytes: key strings, LRU entry, map slot, and the
	// size-class rounding of the token. BeyondAlloc leaves the rounding out (the cache's structure only).
	Beyond, BeyondAlloc float64
}

// A JWT's alphabet, for realistic token bytes.
const b64url = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

// measureMemory fills a cache of capacity entries with n (user, scope set) entries, each a distinct 1.5–2.5 KB
// token, and measures the live heap after GC. Each token is made just before the cache copies it, as the
// handler's response decoding does; the heap a token takes alone (its size-class rounding) is measured on a
// sample of the same tokens, so the cache's own cost is what remains.
func measureMemory(n, capacity int) memResult {
	tokens := newTokenSource()
	scopes := tokencache.NormalizeScopes([]string{"https://graph.microsoft.com/User.Read"}) // one per route
	exp := time.Now().Add(time.Hour)

	tokLen := 0
	base := liveHeap()
	c := tokencache.NewMemory(capacity, time.Minute, nil)
	ctx := context.Background()
	for i := range n {
		t := tokens.next()
		tokLen += len(t)
		oid := fmt.Sprintf("be4c0000-0000-4000-8000-%012d", i)
		k := tokencache.Key{User: tokencache.UserKey(oid, entraemu.DefaultTenantID), Scopes: scopes}
		_ = c.Set(ctx, k, tokencache.Token{AccessToken: t, ExpiresOn: exp, RefreshOn: exp.Add(-5 * time.Minute)})
	}
	total := liveHeap() - base
	r := memResult{Inserted: n, Cap: capacity, Held: c.Len(), HeapBytes: total,
		TokenLen: float64(tokLen) / float64(n), TokenAlloc: newTokenSource().heapPerToken(min(n, 10_000))}
	if r.Held == n { // nothing evicted: every token measured is still held
		r.Beyond = (total - float64(tokLen)) / float64(n)
		r.BeyondAlloc = r.Beyond - (r.TokenAlloc - r.TokenLen)
	}
	runtime.KeepAlive(c)
	return r
}

// tokenSource makes the bench's tokens, 1.5–2.5 KB in a JWT's alphabet, the same sequence for every source. A
// token is a slice of one random pool: the cache copies what it is given, so the fill allocates only what the
// cache keeps.
type tokenSource struct {
	rng  *rand.Rand
	pool string
}

func newTokenSource() *tokenSource {
	rng := rand.New(rand.NewPCG(1, 2))
	pool := make([]byte, 4096)
	for i := range pool {
		pool[i] = b64url[rng.IntN(len(b64url))]
	}
	return &tokenSource{rng: rng, pool: string(pool)}
}

func (s *tokenSource) next() string {
	l := 1536 + s.rng.IntN(1024)
	off := s.rng.IntN(len(s.pool) - l)
	return s.pool[off : off+l]
}

// heapPerToken is the mean live heap of n tokens, each its own allocation as a decoded response's is (rounded up
// to its size class).
func (s *tokenSource) heapPerToken(n int) float64 {
	base := liveHeap()
	toks := make([]string, n)
	for i := range toks {
		toks[i] = strings.Clone(s.next())
	}
	heap := liveHeap() - base - float64(cap(toks))*16 // the slice of headers is not part of any token
	runtime.KeepAlive(toks)
	return heap / float64(n)
}

// liveHeap is the heap in use after two collections (the second frees what the first's finalizers released).
func liveHeap() float64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return float64(m.HeapAlloc)
}

func memoryRows(fills []memResult, capTest memResult) []Row {
	var rows []Row
	for _, r := range fills {
		rows = append(rows, Row{"3", fmt.Sprintf("%s entries (token %.0f B avg): heap; bytes/entry beyond the token",
			count(r.Inserted), r.TokenLen),
			fmt.Sprintf("%.0f MiB; %.0f B (%.0f B without size-class rounding of the token)", r.HeapBytes/(1<<20),
				r.Beyond, r.BeyondAlloc),
			"≤ 1024 B", verdict(r.Held == r.Inserted && r.Beyond <= 1024)})
	}
	c := capTest
	rows = append(rows, Row{"3", fmt.Sprintf("cap %s (cache_max_entries), filled with %s: entries held; heap",
		count(c.Cap), count(c.Inserted)), fmt.Sprintf("%d (%.1f%% of cap); %.0f MiB", c.Held,
		100*float64(c.Held)/float64(c.Cap), c.HeapBytes/(1<<20)), fmt.Sprintf("≤ %d", c.Cap), verdict(c.Held <= c.Cap)})
	return rows
}

func count(n int) string {
	switch {
	case n >= 1_000_000 && n%1_000_000 == 0:
		return fmt.Sprintf("%dM", n/1_000_000)
	case n >= 1000 && n%1000 == 0:
		return fmt.Sprintf("%dk", n/1000)
	}
	return strconv.Itoa(n)
}
