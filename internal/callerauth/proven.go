package callerauth

import (
	"cmp"
	"time"

	"github.com/tokeninjector/caddy-token-injector/internal/lru"
	"github.com/tokeninjector/caddy-token-injector/internal/seal"
)

// Proven tokens (Validator.cache) are remembered by their tag (seal.Tag: the cache key is its Key, and a hit
// counts only if the entry kept its Proof too), so that a token proven once costs a tag and one lookup however
// many are remembered, and the cache keeps no copy of the token. The cache is bounded by bytes, and optionally by
// count.

// DefaultMaxCachedBytes bounds the proven-token cache by default: about 65,000 callers at about 1 KB each (what
// a proven token costs is its identity, whatever the token's size: see cachedIdentity.cost), room for the 50,000
// active users of a large tenant.
const DefaultMaxCachedBytes = 64 << 20

// provenOverhead is what a remembered token costs besides its identity's strings (cachedIdentity.cost): the
// identity's struct, the tag, the LRU entry and its map slot, and the 128 B its memo allocates once the caller is
// served (tokencache.Memo). The heap grows by about 705 B per proven token served once, memo included
// (BenchmarkProvenBytesPerToken), of which the test tokens' strings are 233, so this leaves about a quarter to spare;
// TestProvenOverheadCoversAToken holds the count to the heap.
const provenOverhead = 640 + 128

// cost is what c counts against the cache's byte bound: provenOverhead and its identity's strings.
func (c *cachedIdentity) cost() int64 {
	id := &c.id
	n := len(id.ObjectID) + len(id.TenantID) + len(id.Username) + len(id.Name) + len(id.UserKey) +
		len(id.ClientID) + len(id.AuthContext) + len(c.kid)
	for _, s := range id.Scopes {
		n += len(s) + 16 // and its string header
	}
	return provenOverhead + int64(n)
}

// resizeProven creates the cache (from New) or applies a reload's bounds to it, keeping what fits; unchanged
// bounds leave it alone.
func (v *Validator) resizeProven(cfg Config) {
	limits := [2]int64{int64(cfg.MaxCachedTokens), cmp.Or(cfg.MaxCachedBytes, DefaultMaxCachedBytes)}
	v.resize.Lock()
	defer v.resize.Unlock()
	switch {
	case v.cache == nil:
		v.cache = lru.NewWeighted[uint64, *cachedIdentity](cfg.MaxCachedTokens, limits[1])
		v.limits = limits
	case limits != v.limits:
		v.cache.SetLimits(cfg.MaxCachedTokens, limits[1])
		v.limits = limits
	}
}

// remember keeps a proven token until the time given.
func (v *Validator) remember(tag seal.Tag, c *cachedIdentity, until time.Time) {
	v.cache.AddWeighted(tag.Key(), c, until, c.cost())
}

// ProvenStats is what the proven-token cache holds and how often tokens were verified.
type ProvenStats struct {
	// Tokens and Bytes are the tokens remembered and what they count against the bound.
	Tokens int
	Bytes  int64
	// Verifications counts the RSA signature checks Validate made since the validator was created: one per token
	// it had not proven before (or had forgotten). Its rate under steady load shows a cache that is too small.
	Verifications int64
}

// Stats reports the proven-token cache's size and the verifications made so far, for metrics and benchmarks.
func (v *Validator) Stats() ProvenStats {
	return ProvenStats{Tokens: v.cache.Len(), Bytes: v.cache.Cost(), Verifications: v.verifications.Load()}
}
