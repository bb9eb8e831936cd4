package callerauth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/tokeninjector/caddy-token-injector/internal/entra"
)

// counts is a snapshot of the issuer's fetch counters: v2 doc, v1 doc, v2 JWKS, v1 JWKS.
type counts [4]int64

func (ti *testIssuer) counts() counts {
	return counts{ti.v2Fetches.Load(), ti.v1Fetches.Load(), ti.jwksV2Fetches.Load(), ti.jwksV1Fetches.Load()}
}

func wantCounts(t *testing.T, ti *testIssuer, want counts) {
	t.Helper()
	if got := ti.counts(); got != want {
		t.Errorf("fetches (v2 doc, v1 doc, v2 jwks, v1 jwks) = %v, want %v", got, want)
	}
}

func wantValid(t *testing.T, v *Validator, raw string) *Identity {
	t.Helper()
	id, err := v.Validate(context.Background(), raw, nil)
	if err != nil {
		t.Fatalf("Validate: %v", err)
	}
	return id
}

func wantInvalid(t *testing.T, v *Validator, raw, desc string) {
	t.Helper()
	_, err := v.Validate(context.Background(), raw, nil)
	var inv *InvalidTokenError
	if !errors.As(err, &inv) || inv.Description != desc {
		t.Fatalf("Validate error = %v, want invalid token %q", err, desc)
	}
}

func wantUnavailable(t *testing.T, v *Validator, raw string) {
	t.Helper()
	_, err := v.Validate(context.Background(), raw, nil)
	var inv *InvalidTokenError
	if !errors.Is(err, ErrKeysUnavailable) || errors.As(err, &inv) {
		t.Fatalf("Validate error = %v, want ErrKeysUnavailable", err)
	}
}

func cacheKey(v *Validator, s string) uint64 { return v.tags.Of(s).Key() }

func TestHerdOnColdValidator(t *testing.T) {
	for _, same := range []bool{false, true} {
		t.Run(fmt.Sprintf("sameJWKS=%v", same), func(t *testing.T) {
			ti := newTestIssuer(t)
			ti.set(func(ti *testIssuer) { ti.sameJWKS, ti.jwksDelay = same, 50*time.Millisecond })
			clock := newClock()
			v := newTestValidator(t, ti, clock)
			tokens := []string{ti.mint(t, v2Claims(clock.Now())), ti.mint(t, v1Claims(clock.Now()))}
			var wg sync.WaitGroup
			errs := make(chan error, 200)
			for i := range 200 {
				wg.Go(func() {
					if _, err := v.Validate(context.Background(), tokens[i%2], nil); err != nil {
						errs <- err
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatalf("Validate: %v", err)
			}
			want := counts{1, 1, 1, 1}
			if same {
				want = counts{1, 1, 1, 0}
			}
			wantCounts(t, ti, want)
		})
	}
}

func TestKidRotation(t *testing.T) {
	ti, clock, v := newWarmValidator(t)
	wantCounts(t, ti, counts{1, 1, 1, 1})

	newKey := testKey{kid: "key-2", priv: testRSAKey(t, 1)}
	rotated := sign(t, jose.RS256, newKey.priv, newKey.kid, v2Claims(clock.Now()), nil)
	// Entra publishes the new key; we still hold the old set, and the last fetch was just now.
	ti.set(func(ti *testIssuer) { ti.keys = append(ti.keys, newKey) })
	wantInvalid(t, v, rotated, "unknown signing key")
	wantCounts(t, ti, counts{1, 1, 1, 1}) // rate-limited: no fetch

	clock.Advance(minRefreshInterval)
	wantValid(t, v, rotated)
	wantCounts(t, ti, counts{1, 1, 2, 2}) // JWKS only: discovery is still fresh
	wantValid(t, v, ti.mint(t, v2Claims(clock.Now())))
}

func TestUnknownKidRateLimit(t *testing.T) {
	ti, clock, v := newWarmValidator(t)
	stranger := testRSAKey(t, 2)
	random := func(i int) string {
		return sign(t, jose.RS256, stranger, fmt.Sprintf("random-%d", i), v2Claims(clock.Now()), nil)
	}
	clock.Advance(minRefreshInterval)

	// A burst of concurrent unknown kids shares one refresh ...
	var wg sync.WaitGroup
	for i := range 50 {
		raw := random(i)
		wg.Go(func() { wantInvalid(t, v, raw, "unknown signing key") })
	}
	wg.Wait()
	// ... and later ones within the interval cause none.
	for i := range 20 {
		clock.Advance(time.Second)
		wantInvalid(t, v, random(100+i), "unknown signing key")
	}
	wantCounts(t, ti, counts{1, 1, 2, 2})

	clock.Advance(minRefreshInterval)
	wantInvalid(t, v, random(1000), "unknown signing key")
	wantCounts(t, ti, counts{1, 1, 3, 3})
}

func TestCache(t *testing.T) {
	ti := newTestIssuer(t)
	clock := newClock()
	v := newTestValidator(t, ti, clock)
	claims := v2Claims(clock.Now())
	claims["exp"] = clock.Now().Add(10 * time.Minute).Unix()
	raw := ti.mint(t, claims)

	first := wantValid(t, v, raw)
	first.Scopes = nil // callers get their own copy of the struct
	for range 5 {
		if id := wantValid(t, v, raw); id.ObjectID != testOID || len(id.Scopes) != 1 {
			t.Fatalf("cached identity = %+v", id)
		}
	}
	if n := v.verifications.Load(); n != 1 {
		t.Errorf("RSA verifications = %d, want 1 (cache hits must not verify)", n)
	}

	clock.Advance(10*time.Minute + 59*time.Second) // past exp, within skew
	wantValid(t, v, raw)
	if n := v.verifications.Load(); n != 1 {
		t.Errorf("RSA verifications = %d, want 1", n)
	}
	clock.Advance(time.Second) // exp + skew
	wantInvalid(t, v, raw, "token expired")

	// Negative results are not cached.
	bad := v2Claims(clock.Now())
	bad["aud"] = "someone-else"
	badRaw := ti.mint(t, bad)
	before := v.verifications.Load()
	wantInvalid(t, v, badRaw, `audience "someone-else" is not accepted`)
	wantInvalid(t, v, badRaw, `audience "someone-else" is not accepted`)
	if n := v.verifications.Load() - before; n != 2 {
		t.Errorf("verifications for a rejected token twice = %d, want 2", n)
	}
}

func TestCacheHitStillEnforcesExp(t *testing.T) {
	ti := newTestIssuer(t)
	clock := newClock()
	v := newTestValidator(t, ti, clock)
	raw := ti.mint(t, v2Claims(clock.Now()))
	wantValid(t, v, raw)
	// Make the cache entry outlive the token, as a bug elsewhere might: the hit path must still check exp.
	sum := cacheKey(v, raw)
	c, _ := v.cache.Get(sum, clock.Now())
	v.cache.Add(sum, c, clock.Now().Add(24*time.Hour))
	clock.Advance(time.Hour + v.rules.Load().skew)
	before := v.verifications.Load()
	wantInvalid(t, v, raw, "token expired")
	if v.verifications.Load() != before {
		t.Error("expired cached token was re-verified instead of rejected on the hit path")
	}
	if _, ok := v.cache.Get(sum, clock.Now()); ok {
		t.Error("expired entry left in the cache")
	}
}

func TestCacheLifetimeCapped(t *testing.T) {
	ti := newTestIssuer(t)
	clock := newClock()
	v := newTestValidator(t, ti, clock)
	claims := v2Claims(clock.Now())
	claims["exp"] = clock.Now().Add(3 * time.Hour).Unix()
	raw := ti.mint(t, claims)
	wantValid(t, v, raw)
	clock.Advance(maxCacheLifetime + v.rules.Load().skew)
	wantValid(t, v, raw)
	if n := v.verifications.Load(); n != 2 {
		t.Errorf("verifications = %d, want 2 (re-verified after the 1h cache cap)", n)
	}
}

func TestWithdrawnKeyForgetsCachedTokens(t *testing.T) {
	ti := newTestIssuer(t)
	clock := newClock()
	v := newTestValidator(t, ti, clock)
	oldRaw := ti.mint(t, v2Claims(clock.Now()))
	wantValid(t, v, oldRaw)

	newKey := testKey{kid: "key-2", priv: testRSAKey(t, 1)}
	ti.set(func(ti *testIssuer) { ti.keys = []testKey{newKey} })
	clock.Advance(minRefreshInterval)
	wantValid(t, v, sign(t, jose.RS256, newKey.priv, newKey.kid, v2Claims(clock.Now()), nil)) // refresh drops key-1
	wantInvalid(t, v, oldRaw, "unknown signing key")
}

func TestKeysAreRefreshedPeriodically(t *testing.T) {
	ti := newTestIssuer(t)
	clock := newClock()
	v := newTestValidator(t, ti, clock, func(c *Config) { c.KeyRefresh = 30 * time.Minute })
	claims := v2Claims(clock.Now())
	claims["exp"] = clock.Now().Add(3 * time.Hour).Unix()
	oldRaw := ti.mint(t, claims)
	wantValid(t, v, oldRaw)

	// Entra withdraws key-1. No token names an unknown kid, so only the periodic refresh can notice.
	ti.set(func(ti *testIssuer) { ti.keys = []testKey{{kid: "key-2", priv: testRSAKey(t, 1)}} })
	clock.Advance(29 * time.Minute)
	wantValid(t, v, oldRaw)
	clock.Advance(2 * time.Minute)
	waitForRefresh(t, v)
	wantInvalid(t, v, oldRaw, "unknown signing key")
}

// waitForRefresh validates with whatever keys are current until the background refresh has replaced them.
func waitForRefresh(t *testing.T, v *Validator) {
	t.Helper()
	before := v.keys.cur.Load()
	_, _ = v.keys.current(context.Background(), v.now())
	deadline := time.Now().Add(5 * time.Second)
	for v.keys.cur.Load() == before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
}

func TestDiscoveryDown(t *testing.T) {
	tests := []struct {
		name          string
		breakIt       func(ti *testIssuer)
		misconfigured bool // the operator's to fix, not an outage
	}{
		{"v2 document 500", func(ti *testIssuer) { ti.v2Status = http.StatusInternalServerError }, false},
		{"v2 document 404", func(ti *testIssuer) { ti.v2Status = http.StatusNotFound }, true},
		{"JWKS 503", func(ti *testIssuer) { ti.jwksStatus = http.StatusServiceUnavailable }, false},
		{"JWKS 404", func(ti *testIssuer) { ti.jwksStatus = http.StatusNotFound }, true},
		{"JWKS bad JSON", func(ti *testIssuer) { ti.jwksBody = "{not json" }, true},
		{"JWKS without RSA keys", func(ti *testIssuer) { ti.jwksBody = `{"keys":[{"kty":"oct","k":"AAAA","kid":"x"}]}` }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ti := newTestIssuer(t)
			clock := newClock()
			v := newTestValidator(t, ti, clock)
			raw := ti.mint(t, v2Claims(clock.Now()))
			ti.set(tt.breakIt)
			wantUnavailable(t, v, raw)
			err := warm(v)
			if !errors.Is(err, ErrKeysUnavailable) {
				t.Errorf("Warm error = %v", err)
			}
			var mis *entra.MisconfiguredError
			var un *entra.UnavailableError
			if tt.misconfigured && !errors.As(err, &mis) || !tt.misconfigured && !errors.As(err, &un) {
				t.Errorf("error %v: misconfigured = %v, want %v", err, errors.As(err, &mis), tt.misconfigured)
			}
			before := ti.counts()
			wantUnavailable(t, v, raw) // within coldRetryInterval: no new fetch
			wantCounts(t, ti, before)

			ti.set(func(ti *testIssuer) { ti.v2Status, ti.jwksStatus, ti.jwksBody = 0, 0, "" })
			clock.Advance(coldRetryInterval)
			wantValid(t, v, raw)
		})
	}
}

func TestUnreachableAndTimeout(t *testing.T) {
	ti := newTestIssuer(t)
	clock := newClock()
	raw := ti.mint(t, v2Claims(clock.Now()))

	dead := newTestValidator(t, ti, clock, func(c *Config) { c.AuthorityHost = "https://127.0.0.1:1" })
	wantUnavailable(t, dead, raw)

	ti.set(func(ti *testIssuer) { ti.jwksDelay = time.Second })
	slow := newTestValidator(t, ti, clock, func(c *Config) { c.FetchTimeout = 50 * time.Millisecond })
	wantUnavailable(t, slow, raw)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	cold := newTestValidator(t, ti, clock)
	if _, err := cold.Validate(ctx, raw, nil); !errors.Is(err, ErrKeysUnavailable) || !errors.Is(err, context.Canceled) {
		t.Errorf("canceled Validate error = %v", err)
	}
	// The fetch it started was not tied to the canceled caller: others get its result.
	ti.set(func(ti *testIssuer) { ti.jwksDelay = 0 })
	wantValid(t, cold, raw)
}

func TestV1DiscoveryDown(t *testing.T) {
	ti := newTestIssuer(t)
	ti.set(func(ti *testIssuer) { ti.v1Status = http.StatusInternalServerError })
	clock := newClock()
	v := newTestValidator(t, ti, clock)
	wantValid(t, v, ti.mint(t, v2Claims(clock.Now())))
	wantInvalid(t, v, ti.mint(t, v1Claims(clock.Now())), `issuer "`+testV1Issuer+`" is not this tenant's`)

	// v1 comes back; the next refresh (here: stale keys) picks it up again.
	ti.set(func(ti *testIssuer) { ti.v1Status = 0 })
	clock.Advance(defaultKeyRefresh)
	wantValid(t, v, ti.mint(t, v1Claims(clock.Now())))
}

func TestStaleKeysRefreshLazily(t *testing.T) {
	ti, clock, v := newWarmValidator(t)
	clock.Advance(defaultKeyRefresh)

	// Entra is down when the keys go stale: keep using the old ones, try at most every minRefreshInterval.
	ti.set(func(ti *testIssuer) { ti.v2Status, ti.jwksStatus = http.StatusBadGateway, http.StatusBadGateway })
	for range 5 {
		wantValid(t, v, ti.mint(t, v2Claims(clock.Now())))
	}
	wantCounts(t, ti, counts{2, 2, 1, 1})

	ti.set(func(ti *testIssuer) { ti.v2Status, ti.jwksStatus = 0, 0 })
	clock.Advance(minRefreshInterval)
	wantValid(t, v, ti.mint(t, v2Claims(clock.Now())))
	wantCounts(t, ti, counts{3, 3, 2, 2})
	wantValid(t, v, ti.mint(t, v2Claims(clock.Now())))
	wantCounts(t, ti, counts{3, 3, 2, 2})
}

func TestDiscoveryTenantChecks(t *testing.T) {
	ti := newTestIssuer(t)
	clock := newClock()
	raw := ti.mint(t, v2Claims(clock.Now()))

	byGUID := newTestValidator(t, ti, clock, func(c *Config) { c.Tenant = testTID })
	wantValid(t, byGUID, raw)

	// The domain now resolves to another tenant: our token is from the wrong tenant.
	other := "9188040d-6c67-4c5b-b112-36a304b66dad"
	ti.set(func(ti *testIssuer) { ti.tid = other })
	byDomain := newTestValidator(t, ti, clock, func(c *Config) { c.Tenant = testDomain })
	wantInvalid(t, byDomain, raw, `token is from tenant "`+testTID+`", not this tenant`)

	// Discovery for a GUID tenant that names another tenant is a misconfiguration, not a token problem.
	mismatch := newTestValidator(t, ti, clock, func(c *Config) { c.Tenant = testTID })
	wantUnavailable(t, mismatch, raw)
}

func TestTenantParsing(t *testing.T) {
	for iss, want := range map[string]string{
		"https://login.microsoftonline.com/" + testTID + "/v2.0":  testTID,
		"https://login.microsoftonline.com/" + testTID + "/v2.0/": testTID,
		"https://127.0.0.1:9/prefix/" + testTID + "/v2.0":         testTID,
		"https://login.microsoftonline.com/{tenantid}/v2.0":       "",
		"https://login.microsoftonline.com/" + testTID:            "",
		"/" + testTID + "/v2.0":                                   "",
		"":                                                        "",
	} {
		got, err := tenantFromV2Issuer(iss)
		if got != want || (err == nil) != (want != "") {
			t.Errorf("tenantFromV2Issuer(%q) = %q, %v; want %q", iss, got, err, want)
		}
	}
	if !issuerNamesTenant(testV1Issuer, testTID) || issuerNamesTenant("https://sts.windows.net/x/", testTID) {
		t.Error("issuerNamesTenant")
	}
}
