package callerauth

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"
	"github.com/tokeninjector/caddy-token-injector/internal/dev/testenv"
)

// FuzzValidate: Validate never panics, every error is an InvalidTokenError (the issuer is up), and nothing is
// accepted unless its signature verifies with the issuer's key.
func FuzzValidate(f *testing.F) {
	ti, clock, v := newWarmValidator(f)
	now := clock.Now()
	pub := &testRSAKey(f, 0).PublicKey

	v2 := ti.mint(f, v2Claims(now))
	v1 := ti.mint(f, v1Claims(now))
	parts := strings.Split(v2, ".")
	b64 := base64.RawURLEncoding.EncodeToString
	expired := v2Claims(now)
	expired["exp"] = now.Add(-2 * v.rules.Load().skew).Unix()
	appOnly := v2Claims(now)
	delete(appOnly, "scp")
	for _, seed := range []string{
		v2, v1,
		ti.mint(f, expired),
		ti.mint(f, appOnly),
		sign(f, jose.RS256, testRSAKey(f, 1), "key-1", v2Claims(now), nil),
		sign(f, jose.HS256, []byte(strings.Repeat("k", 32)), "key-1", v2Claims(now), nil),
		b64([]byte(`{"alg":"none","kid":"key-1"}`)) + "." + parts[1] + ".",
		parts[0] + "." + b64([]byte(`{"aud":"x"}`)) + "." + parts[2],
		parts[0] + "." + parts[1] + ".",
		"", ".", "..", "...", "a.b.c", "garbage", "Bearer " + v2,
	} {
		f.Add(seed)
	}

	f.Fuzz(func(t *testing.T, raw string) {
		id, err := v.Validate(context.Background(), raw)
		if err != nil {
			var inv *InvalidTokenError
			if !errors.As(err, &inv) {
				t.Fatalf("non-token error with the issuer up: %v", err)
			}
			if id != nil {
				t.Fatal("identity returned with an error")
			}
			if len(raw) > 200 && strings.Contains(inv.Description, raw) {
				t.Fatal("description echoes the token")
			}
			return
		}
		jws, perr := jose.ParseSignedCompact(raw, []jose.SignatureAlgorithm{jose.RS256})
		if perr != nil {
			t.Fatalf("accepted a token that does not parse as RS256 JWS: %v", perr)
		}
		if _, verr := jws.Verify(pub); verr != nil {
			t.Fatalf("accepted a token not signed by the test key: %v", verr)
		}
		if id == nil || id.TenantID != testTID || id.ObjectID == "" || len(id.Scopes) == 0 {
			t.Fatalf("accepted with a bad identity: %+v", id)
		}
	})
}

func benchValidator(b *testing.B, maxCached int) (*Validator, *testIssuer, *testenv.Clock) {
	ti := newTestIssuer(b)
	clock := newClock()
	v := newTestValidator(b, ti, clock, func(c *Config) { c.MaxCachedTokens = maxCached })
	mustWarm(b, v)
	return v, ti, clock
}

func BenchmarkValidateCached(b *testing.B) {
	v, ti, clock := benchValidator(b, 0)
	raw := ti.mint(b, v2Claims(clock.Now()))
	ctx := context.Background()
	if _, err := v.Validate(ctx, raw); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Validate(ctx, raw); err != nil {
			b.Fatal(err)
		}
	}
	if n := v.verifications.Load(); n != 1 {
		b.Fatalf("verifications = %d, want 1", n)
	}
}

// BenchmarkValidateUncached alternates two tokens through a one-entry cache, so every call parses, verifies the
// RSA signature, checks claims and stores the result.
func BenchmarkValidateUncached(b *testing.B) {
	v, ti, clock := benchValidator(b, 1)
	c1, c2 := v2Claims(clock.Now()), v2Claims(clock.Now())
	c2["jti"] = "second"
	tokens := [2]string{ti.mint(b, c1), ti.mint(b, c2)}
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := v.Validate(ctx, tokens[i&1]); err != nil {
			b.Fatal(err)
		}
		i++
	}
	if n := v.verifications.Load(); n != int64(i) {
		b.Fatalf("verifications = %d, want %d (cache should miss every time)", n, i)
	}
}
