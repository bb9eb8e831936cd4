package callerauth

import (
	"cmp"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"hash"
	"sync"
	"time"
	"unsafe"

	"github.com/tokeninjector/caddy-token-injector/internal/lru"
)

// Proven tokens (Validator.cache) are remembered by their tag (provenTag), so that a token proven once costs a
// tag and one lookup however many are remembered, and the cache keeps no copy of the token. The cache is bounded
// by bytes, and optionally by count.

// DefaultMaxCachedBytes bounds the proven-token cache by default: about 60,000 callers at about 1.1 KB each (what
// a proven token costs is its identity, whatever the token's size: see cachedIdentity.cost), room for the 50,000
// active users of a large tenant.
const DefaultMaxCachedBytes = 64 << 20

// provenOverhead is what a remembered token costs besides its identity's strings (cachedIdentity.cost): the
// identity's struct, the tag, the LRU entry and its map slot, and the 160 B its memo allocates once the caller is
// served (tokencache.Memo). The heap grows by about 754 B per proven token served once, memo included
// (BenchmarkProvenBytesPerToken), of which the test tokens' strings are 233, so this leaves about a quarter to spare;
// TestProvenOverheadCoversAToken holds the count to the heap.
const provenOverhead = 640 + 160

// provenTag proves that a token is one proven before without keeping it: the GMAC of the whole token (AES-GCM
// with the token as additional data and no plaintext) under a key drawn when the Validator is made, which never
// leaves it, and one fixed nonce. For anyone without the key, two different tokens of n 16-byte blocks share a
// tag with probability at most (n+1)/2^128 (GHASH is a universal hash; the fixed nonce only masks every tag with
// the same block), and the tags are never shown, so a forged token cannot be steered to one. The tag is also the
// cache key, so the lookup needs no other hash. Computing it over a 1.6 KB token costs about 0.25 µs (6 GB/s with
// AES-NI and carry-less multiply), less than reading back a kept copy of the token once a large cache is cold.
type provenTag [gcmTagSize]byte

const gcmTagSize = 16

// key is the cache key: the tag's first half (the whole tag is compared on a hit).
func (t provenTag) key() uint64 { return binary.LittleEndian.Uint64(t[:8]) }

// tagger computes provenTags with one key: a GMAC, or where GCM with a fixed nonce is refused (under
// GODEBUG=fips140=only) an HMAC-SHA-256 cut to the tag's size, as sound a proof and about six times slower.
type tagger struct {
	gmac cipher.AEAD
	macs *sync.Pool // of hash.Hash (HMAC-SHA-256), when gmac is nil
}

func newTagger() (tagger, error) {
	key := make([]byte, 32)
	_, _ = rand.Read(key) // never fails (crypto/rand)
	block, err := aes.NewCipher(key[:16])
	if err != nil {
		return tagger{}, err
	}
	if gmac, err := cipher.NewGCM(block); err == nil {
		return tagger{gmac: gmac}, nil
	}
	return tagger{macs: &sync.Pool{New: func() any { return hmac.New(sha256.New, key) }}}, nil
}

// tagNonce is the one nonce of every tag; see provenTag.
var tagNonce [12]byte

// tagBufs hold Seal's and Sum's output, which a stack buffer would not (an interface call's arguments escape).
var tagBufs = sync.Pool{New: func() any { return new([sha256.Size]byte) }}

// of returns raw's tag. Seal and Write only read the token, so its bytes are passed as they are.
func (t tagger) of(raw string) (tag provenTag) {
	b := unsafe.Slice(unsafe.StringData(raw), len(raw))
	buf := tagBufs.Get().(*[sha256.Size]byte)
	if t.gmac != nil {
		t.gmac.Seal(buf[:0], tagNonce[:], nil, b)
	} else {
		mac := t.macs.Get().(hash.Hash)
		mac.Reset()
		mac.Write(b)
		mac.Sum(buf[:0])
		t.macs.Put(mac)
	}
	copy(tag[:], buf[:])
	tagBufs.Put(buf)
	return tag
}

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
func (v *Validator) remember(c *cachedIdentity, until time.Time) {
	v.cache.AddWeighted(c.tag.key(), c, until, c.cost())
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
