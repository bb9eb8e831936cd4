package callerauth

import (
	"cmp"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/tokeninjector/caddy-token-injector/internal/lru"
	"github.com/tokeninjector/caddy-token-injector/internal/seal"
	"github.com/tokeninjector/caddy-token-injector/internal/tokencache"
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

// cachedIdentity is a proven token as the cache remembers it. It is 256 bytes, a size class whose objects start on
// a cache line, and a hit reads its first two lines: the proof, the checks and the memo in the first, what the
// handler reads of the identity in the second (TestCachedIdentityHitReadsTwoLines).
type cachedIdentity struct {
	proof uint64 // the proven token's tag's Proof (its Key is the cache's); the token itself is not kept
	// The key set that last had the token's key, and the conditions that last took its caller: a hit under the
	// same two costs two pointer comparisons, not a map lookup by kid, a comparison of tenants and a search of
	// the token's scopes (strings apart from the entry, so cold lines at scale). A key refresh, a reload or
	// another route makes the next hit check again.
	keysOK  atomic.Pointer[keySet]
	takenOK atomic.Pointer[conditions]
	memo    tokencache.Memo // id.Memo
	id      Identity
	kid     string // so tokens signed by a key that leaves the JWKS are forgotten
	aud     string // the accepted audience it was issued for (the rules' string), so a reload that drops it counts
	_       [8]byte
}

// conditions are what a proven token was last taken under: the validator's rules at the time, and the route's
// Rules whose current conditions they are. One pointer stands for both.
type conditions struct{ rules *rules }

// under returns route's conditions under the validator's rules r, made once per r and route.
func (route *Rules) under(r *rules) *conditions {
	if c := route.current.Load(); c != nil && c.rules == r {
		return c
	}
	c := &conditions{rules: r}
	route.current.Store(c) // a race makes two, and hits check again until one stays: correct either way
	return c
}

// takenUnder reports whether the proven token still counts under the key set ks and the validator's rules r: its
// key is still in ks (the tenant the set was discovered for never changes), and r still takes its tenant and
// audience. If it counts, err is route's refusal of its caller (*ForbiddenError), or nil; a refused token stays
// remembered, since another route may take it.
func (c *cachedIdentity) takenUnder(ks *keySet, r *rules, route *Rules) (counts bool, err error) {
	if c.keysOK.Load() != ks {
		if ks.keys[c.kid] == nil {
			return false, nil
		}
		c.keysOK.Store(ks)
	}
	cond := route.under(r)
	if c.takenOK.Load() == cond {
		return true, nil
	}
	if _, err := checkAudience(jwt.Audience{c.aud}, r.audiences); err != nil || !r.tenants.takes(c.id.TenantID, ks.tenantID) {
		return false, nil
	}
	if err := route.Authorize(&c.id); err != nil {
		return true, err
	}
	c.takenOK.Store(cond)
	return true, nil
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
