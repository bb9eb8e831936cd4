package callerauth

import (
	"context"
	"fmt"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/tokeninjector/caddy-token-injector/internal/dev/entraemu"
	"github.com/tokeninjector/caddy-token-injector/internal/dev/testenv"
	"github.com/tokeninjector/caddy-token-injector/internal/tokencache"
)

// mintMany mints n distinct valid tokens (their oid differs), each padded with a name claim of pad bytes.
func mintMany(t testing.TB, ti *testIssuer, now time.Time, n, pad int) []string {
	toks := make([]string, n)
	for i := range toks {
		c := v2Claims(now)
		c["oid"] = fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
		c["name"] = strings.Repeat("n", pad)
		toks[i] = ti.mint(t, c)
	}
	return toks
}

// TestProvenCacheIsBoundedByBytes: a validator remembers as many proven tokens as its byte bound holds, each
// counting its identity (here a 1,000-byte name) plus the overhead, and a remembered token is never verified again.
func TestProvenCacheIsBoundedByBytes(t *testing.T) {
	ti := newTestIssuer(t)
	clock := newClock()
	toks := mintMany(t, ti, clock.Now(), 200, 1000)
	one := newTestValidator(t, ti, clock)
	wantValid(t, one, toks[0])
	perToken := one.Stats().Bytes // the tokens' identities differ only in their oid's digits
	if perToken < provenOverhead+1000 {
		t.Fatalf("a proven token with a 1,000-byte name counts %d bytes, want at least %d", perToken, provenOverhead+1000)
	}
	tests := []struct {
		name    string
		bound   int64
		entries int
		want    int // tokens remembered
	}{
		{"all fit", 0, 0, 200},
		{"bytes for 50", 50 * perToken, 0, 50},
		{"entries for 20, bytes for 50", 50 * perToken, 20, 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := newTestValidator(t, ti, clock, func(c *Config) { c.MaxCachedBytes, c.MaxCachedTokens = tt.bound, tt.entries })
			for _, tok := range toks {
				wantValid(t, v, tok)
			}
			st := v.Stats()
			if st.Tokens != tt.want || st.Verifications != int64(len(toks)) || st.Bytes > int64(tt.want)*perToken+int64(tt.want) {
				t.Fatalf("stats %+v, want %d tokens of about %d bytes each, %d verifications", st, tt.want, perToken, len(toks))
			}
			for _, tok := range toks[len(toks)-tt.want:] { // the most recent ones are remembered
				wantValid(t, v, tok)
			}
			if n := v.Stats().Verifications; n != int64(len(toks)) {
				t.Errorf("remembered tokens were verified again: %d verifications, want %d", n, len(toks))
			}
		})
	}
}

// TestProvenCacheResizesOnUpdate: a reload that lowers the bound keeps as many tokens as fit, and those are not
// verified again. (Which ones is approximately the most recent: recency is kept per shard.)
func TestProvenCacheResizesOnUpdate(t *testing.T) {
	ti := newTestIssuer(t)
	clock := newClock()
	v := newTestValidator(t, ti, clock)
	toks := mintMany(t, ti, clock.Now(), 30, 0)
	for _, tok := range toks {
		wantValid(t, v, tok)
	}
	cfg := Config{AuthorityHost: ti.srv.URL, Tenant: testDomain, Audiences: []string{testClientID},
		HTTPClient: ti.srv.Client(), MaxCachedTokens: 10}
	if err := v.Update(cfg); err != nil {
		t.Fatal(err)
	}
	if st := v.Stats(); st.Tokens != 10 || st.Verifications != int64(len(toks)) {
		t.Fatalf("after lowering the bound to 10 tokens: %+v", st)
	}
	var kept []string
	for _, tok := range toks {
		if _, ok := v.cache.Get(cacheKey(v, tok), clock.Now()); ok {
			kept = append(kept, tok)
		}
	}
	if len(kept) != 10 {
		t.Fatalf("%d of the tokens are remembered after the resize, want 10", len(kept))
	}
	for _, tok := range kept {
		wantValid(t, v, tok)
	}
	if n := v.Stats().Verifications; n != int64(len(toks)) {
		t.Errorf("tokens kept by the resize were verified again: %d verifications, want %d", n, len(toks))
	}
}

// BenchmarkProvenBytesPerToken measures what a proven token costs on the heap in all: the tokens are dropped
// after they are proven, as a request's header is after its request, so what stays is what the cache keeps.
//
//	go test -run '^$' -bench ProvenBytesPerToken ./internal/callerauth
func BenchmarkProvenBytesPerToken(b *testing.B) {
	ti := newTestIssuer(b)
	clock := newClock()
	for b.Loop() {
		perToken, counted := provenHeapPerToken(b, ti, clock, 2000)
		b.ReportMetric(perToken, "B/token")
		b.ReportMetric(counted, "B/token-counted")
	}
}

// TestProvenOverheadCoversAToken: the byte bound counts each proven token as its identity plus provenOverhead
// (cachedIdentity.cost), so that must be at least what the heap grows by per token, or the bound lets the cache
// grow past it. The tokens are dropped once proven: a cache that kept them would grow by their 1 KB each too.
func TestProvenOverheadCoversAToken(t *testing.T) {
	ti := newTestIssuer(t)
	clock := newClock()
	if perToken, counted := provenHeapPerToken(t, ti, clock, 1000); perToken > counted {
		t.Errorf("a proven token costs %.0f B of heap; the byte bound counts %.0f", perToken, counted)
	}
}

// provenHeapPerToken proves n new tokens in a new validator, drops them, and returns the heap's growth per token
// and what the cache counted per token.
func provenHeapPerToken(tb testing.TB, ti *testIssuer, clock *testenv.Clock, n int) (perToken, counted float64) {
	v := newTestValidator(tb, ti, clock)
	warmKeys(tb, v, mintMany(tb, ti, clock.Now(), 1, 0)[0])
	v.cache.RemoveFunc(func(uint64, *cachedIdentity) bool { return true })
	// Each caller is served its own cached token once, so its memo holds what serving it allocates.
	served := tokencache.NewMemory(2*n, 0, clock.Now)
	keys := make([]tokencache.Key, n)
	for i := range keys {
		keys[i] = tokencache.Key{User: strconv.Itoa(i), Scopes: "s"}
		_ = served.Set(tb.Context(), keys[i], tokencache.Token{AccessToken: "t", ExpiresOn: clock.Now().Add(time.Hour)})
	}
	before := heapNow()
	for i, tok := range mintMany(tb, ti, clock.Now(), n, 0) {
		id, err := v.Validate(tb.Context(), tok, nil)
		if err != nil {
			tb.Fatal(err)
		}
		if _, ok, _ := served.GetMemo(tb.Context(), keys[i], id.Memo); !ok {
			tb.Fatal("the token to serve is not cached")
		}
	}
	heap := heapNow() - before
	runtime.KeepAlive(v)
	return heap / float64(n), float64(v.Stats().Bytes) / float64(n)
}

func warmKeys(tb testing.TB, v *Validator, tok string) {
	if _, err := v.Validate(tb.Context(), tok, nil); err != nil {
		tb.Fatal(err)
	}
}

func heapNow() float64 {
	runtime.GC()
	runtime.GC()
	var s runtime.MemStats
	runtime.ReadMemStats(&s)
	return float64(s.HeapAlloc)
}

// TestProvenTagCoversEveryByte: a proven token is remembered by a tag of all its bytes, so a token that keeps a
// proven token's signature but carries another payload, or differs in one byte anywhere, or has one byte more in
// front, is another token: it is verified (when it parses) and refused, never given the proven caller's identity.
func TestProvenTagCoversEveryByte(t *testing.T) {
	ti := newTestIssuer(t)
	clock := newClock()
	v := newTestValidator(t, ti, clock)
	victim := v2Claims(clock.Now())
	proven := ti.mint(t, victim)
	if id := wantValid(t, v, proven); id.ObjectID != victim["oid"] {
		t.Fatalf("proven token's oid = %q, want %q", id.ObjectID, victim["oid"])
	}
	parts := strings.Split(proven, ".")
	other := v2Claims(clock.Now())
	other["oid"] = "ffffffff-0000-4000-8000-000000000001"
	otherParts := strings.Split(ti.mint(t, other), ".")
	flip := func(i int) string { // another base64url character at i
		b := []byte(proven)
		b[i] = map[bool]byte{true: 'B', false: 'A'}[b[i] == 'A']
		return string(b)
	}
	tests := []struct {
		name, forged string
		verified     bool // it parses, so its signature is checked (and fails)
	}{
		{"another payload, the proven signature", parts[0] + "." + otherParts[1] + "." + parts[2], true},
		{"a byte in front", "e" + proven, false},
		{"one byte of the payload", flip(len(parts[0]) + 1 + len(parts[1])/2), true},
		{"the signature's first byte", flip(len(parts[0]) + len(parts[1]) + 2), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.forged == proven {
				t.Fatal("the forged token is the proven one: the test proves nothing")
			}
			before := v.Stats().Verifications
			if id, err := v.Validate(context.Background(), tt.forged, nil); err == nil {
				t.Fatalf("forged token accepted as oid %q", id.ObjectID)
			}
			if tt.verified && v.Stats().Verifications == before {
				t.Error("the forged token was refused without a signature check")
			}
			wantValid(t, v, proven) // and the proven caller is still remembered
		})
	}
}

// TestTagsUnderFIPSOnly: where GCM with a fixed nonce is refused (GODEBUG=fips140=only), a Validator is still made
// and tags with HMAC-SHA-256 instead: the same token always gets the same tag, two tokens that differ in one byte
// get different ones. It runs itself again in a process with that setting (testenv.InFIPSOnlyChild).
func TestTagsUnderFIPSOnly(t *testing.T) {
	if !testenv.InFIPSOnlyChild(t) {
		return
	}
	v, err := New(Config{AuthorityHost: "https://login.microsoftonline.com", Tenant: entraemu.DefaultTenantID,
		Audiences: []string{"api://x"}, HTTPClient: http.DefaultClient})
	if err != nil {
		t.Fatalf("New under fips140=only: %v", err)
	}
	defer v.Close()
	if !v.tags.HMAC() {
		t.Fatal("GCM with a fixed nonce was allowed under fips140=only: the test proves nothing")
	}
	a, b := strings.Repeat("a", 1600), strings.Repeat("a", 1599)+"b"
	if v.tags.Of(a) != v.tags.Of(strings.Clone(a)) || v.tags.Of(a) == v.tags.Of(b) {
		t.Fatal("HMAC tags: the same token must get one tag, two tokens two")
	}
}

// A reload that drops an audience refuses the tokens proven for it before; one that keeps it, in another case,
// still takes them from the cache.
func TestReloadThatDropsAnAudienceRefusesItsProvenTokens(t *testing.T) {
	ti := newTestIssuer(t)
	clock := newClock()
	v := newTestValidator(t, ti, clock)
	c := v2Claims(clock.Now())
	c["aud"] = testAppIDURI
	raw := ti.mint(t, c)
	wantValid(t, v, raw)
	reload := func(audiences ...string) {
		t.Helper()
		if err := v.Update(Config{AuthorityHost: ti.srv.URL, Tenant: testDomain, Audiences: audiences,
			HTTPClient: ti.srv.Client()}); err != nil {
			t.Fatal(err)
		}
	}
	reload(testClientID, strings.ToUpper(testAppIDURI))
	verified := v.verifications.Load()
	wantValid(t, v, raw)
	if v.verifications.Load() != verified {
		t.Fatal("a reload that kept the audience verified the proven token again")
	}
	reload(testClientID)
	_, err := v.Validate(t.Context(), raw, nil)
	if bad, ok := err.(*InvalidTokenError); !ok || !strings.Contains(bad.Description, "audience") {
		t.Fatalf("a token for the audience the reload dropped: %v, want invalid_token naming the audience", err)
	}
}

// TestCachedIdentityHitReadsTwoLines holds cachedIdentity to the layout its comment promises: 256 bytes, with
// everything a hit reads (the proof, the checks, the memo, and the identity's UserKey, AuthContext, Memo,
// Placeholders and ExpiresAt) in its first 128.
func TestCachedIdentityHitReadsTwoLines(t *testing.T) {
	var c cachedIdentity
	end := unsafe.Offsetof(c.id) + unsafe.Offsetof(c.id.ExpiresAt) + unsafe.Sizeof(c.id.ExpiresAt)
	if size := unsafe.Sizeof(c); size != 256 || end > 128 {
		t.Errorf("cachedIdentity is %d bytes, its hot fields end at %d; want 256 and at most 128", size, end)
	}
}

// TestProvenTokenNeedsTheWholeTag: an entry found under a token's tag's Key counts only if it kept the tag's
// Proof too, so a token whose tag shares only the first half with a proven one's is checked, never taken for
// that caller.
func TestProvenTokenNeedsTheWholeTag(t *testing.T) {
	ti := newTestIssuer(t)
	clock := newClock()
	v := newTestValidator(t, ti, clock)
	proven := mintMany(t, ti, clock.Now(), 1, 0)[0]
	wantValid(t, v, proven)
	c, ok := v.cache.Get(cacheKey(v, proven), clock.Now())
	if !ok {
		t.Fatal("the proven token is not remembered")
	}
	forged := proven[:len(proven)-4] + "AAAA" // its signature broken
	// Make the forged token's Key name the proven caller's entry, as a collision in the first half would.
	v.cache.Add(cacheKey(v, forged), c, clock.Now().Add(time.Hour))
	if id, err := v.Validate(t.Context(), forged, nil); err == nil {
		t.Fatalf("a token with another Proof was taken for %s", id.UserKey)
	}
}
