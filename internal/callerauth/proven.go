package callerauth

import (
	"cmp"
	"hash/maphash"
	"time"

	"github.com/tokeninjector/caddy-token-injector/internal/lru"
)

// Proven tokens (Validator.cache) are remembered by a seeded hash of the raw token, so that a token proven once
// costs a hash and one lookup however many are remembered. The cache is bounded by bytes, because tokens vary in
// size (1.5 KB for an Office SSO token, several KB with many groups), and optionally by count.

// DefaultMaxCachedBytes bounds the proven-token cache by default: 50,000 callers with tokens of up to 3 KB (an
// Office SSO token is 1.5–2.5 KB), each costing its length plus provenOverhead.
const DefaultMaxCachedBytes = 192 << 20

// provenOverhead is what a remembered token costs besides its own bytes: the identity's strings and struct, the
// LRU entry and its map slot: 728–744 B measured (BenchmarkProvenBytesPerToken), rounded up, and held to it by
// TestProvenOverheadCoversAToken. It was 640 until that test showed the heap grew by more.
const provenOverhead = 800

// provenTail is how much of a token's end provenKey hashes: inside a JWS's signature (342 characters for RS256),
// which differs between any two tokens the issuer signed.
const provenTail = 64

// provenKey is the cache key of raw: a seeded hash of its last provenTail bytes, rather than of all 1.5–3 KB of
// it, on every request. Only proven tokens are stored, and their signatures differ, so their keys do not collide
// but by chance; tokens that share an end with a proven one (forged ones) find that entry, fail the exact
// comparison Validate makes, and are verified like any unknown token.
func provenKey(seed maphash.Seed, raw string) uint64 {
	return maphash.String(seed, raw[max(len(raw)-provenTail, 0):])
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
func (v *Validator) remember(sum uint64, c *cachedIdentity, until time.Time) {
	v.cache.AddWeighted(sum, c, until, int64(len(c.raw))+provenOverhead)
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
