package callerauth

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

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
		id, err := v.Validate(context.Background(), raw, nil)
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
	if _, err := v.Validate(ctx, raw, nil); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Validate(ctx, raw, nil); err != nil {
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
		if _, err := v.Validate(ctx, tokens[i&1], nil); err != nil {
			b.Fatal(err)
		}
		i++
	}
	if n := v.verifications.Load(); n != int64(i) {
		b.Fatalf("verifications = %d, want %d (cache should miss every time)", n, i)
	}
}

// FuzzSignedClaims fuzzes the claims of correctly signed tokens, which FuzzValidate rarely reaches: the payload is
// signed with the issuer's key, so every rejection is the claim checks' doing. Validate never panics, rejects only
// with an *InvalidTokenError, and accepts only what an independent reading of the payload (encoding/json, exact key
// names) says is acceptable, returning the payload's oid and tid.
func FuzzSignedClaims(f *testing.F) {
	ti := newTestIssuer(f)
	clock := newClock()
	v := newTestValidator(f, ti, clock)
	mustWarm(f, v)
	now := clock.Now()
	skew := v.rules.Load().skew
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: testRSAKey(f, 0)},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "key-1"))
	if err != nil {
		f.Fatal(err)
	}

	variants := []func(c map[string]any){
		func(map[string]any) {},
		func(c map[string]any) { c["aud"] = strings.ToUpper(testClientID) },
		func(c map[string]any) { c["aud"] = []string{"api://other", testAppIDURI} },
		func(c map[string]any) { c["aud"] = []any{1, testClientID} },
		func(c map[string]any) { c["aud"] = "api://other" },
		func(c map[string]any) { c["iss"] = strings.ToUpper(testV2Issuer) },
		func(c map[string]any) { c["iss"] = "https://login.microsoftonline.com/common/v2.0" },
		func(c map[string]any) { c["tid"] = strings.ToUpper(testTID) },
		func(c map[string]any) { c["tid"] = "00000000-0000-0000-0000-000000000000" },
		func(c map[string]any) { c["exp"] = now.Add(-skew / 2).Unix() },
		func(c map[string]any) { c["exp"] = now.Add(-2 * skew).Unix() },
		func(c map[string]any) { c["exp"] = strconv.FormatInt(now.Add(time.Hour).Unix(), 10) },
		func(c map[string]any) { c["exp"] = float64(now.Add(time.Hour).Unix()) + 0.5 },
		func(c map[string]any) { c["exp"] = math.MaxInt64 },
		func(c map[string]any) { c["nbf"] = now.Add(skew / 2).Unix() },
		func(c map[string]any) { c["nbf"] = now.Add(2 * skew).Unix() },
		func(c map[string]any) { c["nbf"] = -math.MaxInt64 },
		func(c map[string]any) { delete(c, "nbf") },
		func(c map[string]any) { delete(c, "oid") },
		func(c map[string]any) { c["scp"] = "  " },
		func(c map[string]any) { delete(c, "scp"); c["roles"] = []string{"Data.Read"} },
		func(c map[string]any) { c["ver"] = "3.0" },
		func(c map[string]any) { c["aud"] = nil },
	}
	for _, base := range []func(time.Time) map[string]any{v2Claims, v1Claims} {
		for _, mod := range variants {
			c := base(now)
			mod(c)
			b, err := json.Marshal(c)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	// Smuggling attempts: a second aud, a differently cased key, not an object at all.
	good, _ := json.Marshal(v2Claims(now))
	f.Add(append([]byte(`{"aud":"api://other",`), good[1:]...))
	f.Add(append([]byte(`{"AUD":"api://other","TID":"x",`), good[1:]...))
	f.Add([]byte(`[]`))
	f.Add([]byte(`null`))
	// The oracle's yes must be reachable: the plain v2 payload, signed here, is accepted.
	if jws, err := signer.Sign(good); err != nil {
		f.Fatal(err)
	} else if raw, _ := jws.CompactSerialize(); acceptable(good, now, skew) != "" {
		f.Fatalf("oracle rejects the plain v2 payload: %s", acceptable(good, now, skew))
	} else if _, err := v.Validate(context.Background(), raw, nil); err != nil {
		f.Fatalf("plain v2 payload rejected: %v", err)
	}

	f.Fuzz(func(t *testing.T, payload []byte) {
		jws, err := signer.Sign(payload)
		if err != nil {
			t.Fatalf("Sign: %v", err)
		}
		raw, err := jws.CompactSerialize()
		if err != nil {
			t.Fatalf("CompactSerialize: %v", err)
		}
		id, err := v.Validate(context.Background(), raw, nil)
		if err != nil {
			if id != nil {
				t.Fatal("identity returned with an error")
			}
			var inv *InvalidTokenError
			if !errors.As(err, &inv) {
				t.Fatalf("a signed token got a non-token error: %v", err)
			}
			return
		}
		if len(raw) > maxTokenBytes {
			t.Fatalf("accepted a %d-byte token", len(raw))
		}
		why := acceptable(payload, now, skew)
		if why != "" {
			t.Fatalf("accepted, but %s; payload %s", why, payload)
		}
		var c struct{ OID, TID string }
		var m map[string]json.RawMessage
		_ = json.Unmarshal(payload, &m)
		_ = json.Unmarshal(m["oid"], &c.OID)
		_ = json.Unmarshal(m["tid"], &c.TID)
		if id == nil || id.ObjectID != c.OID || id.TenantID != c.TID {
			t.Fatalf("identity %+v does not carry the payload's oid %q and tid %q", id, c.OID, c.TID)
		}
	})
}

// acceptable reads payload independently of the validator and returns why it must be rejected, or "" if it may be
// accepted.
func acceptable(payload []byte, now time.Time, skew time.Duration) string {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(payload, &m); err != nil || m == nil {
		return "the payload is not a JSON object"
	}
	str := func(name string) (string, bool) {
		var s string
		if raw, ok := m[name]; !ok || json.Unmarshal(raw, &s) != nil {
			return "", false
		}
		return s, true
	}
	var auds []string
	if raw, ok := m["aud"]; ok {
		var one string
		if json.Unmarshal(raw, &one) == nil {
			auds = []string{one}
		} else if json.Unmarshal(raw, &auds) != nil {
			return "aud is neither a string nor an array of strings"
		}
	}
	audOK := false
	for _, a := range auds {
		audOK = audOK || strings.EqualFold(a, testClientID) || strings.EqualFold(a, testAppIDURI)
	}
	if !audOK {
		return "no accepted audience"
	}
	if iss, _ := str("iss"); !strings.EqualFold(iss, testV2Issuer) && !strings.EqualFold(iss, testV1Issuer) {
		return "iss is not the tenant's"
	}
	if tid, _ := str("tid"); tid != testTID {
		return "tid is not the tenant's"
	}
	if oid, _ := str("oid"); oid == "" {
		return "oid is empty"
	}
	if scp, _ := str("scp"); len(strings.Fields(scp)) == 0 {
		return "scp is empty"
	}
	if ver, ok := m["ver"]; ok && string(ver) != "null" {
		if s, ok := str("ver"); !ok || (s != "" && s != "1.0" && s != "2.0") {
			return "ver is not 1.0 or 2.0"
		}
	}
	exp, ok := numericDate(m["exp"])
	if !ok || !now.Before(exp.Add(skew)) {
		return "exp is missing, malformed or past (beyond the skew)"
	}
	if raw, present := m["nbf"]; present && string(raw) != "null" {
		if nbf, ok := numericDate(raw); !ok || now.Add(skew).Before(nbf) {
			return "nbf is malformed or in the future (beyond the skew)"
		}
	}
	return ""
}

// numericDate reads a JWT NumericDate: a JSON number of seconds, within ±2^62 so that no conversion overflows.
func numericDate(raw json.RawMessage) (time.Time, bool) {
	var n json.Number // encoding/json also takes a quoted number here, which a NumericDate is not
	if len(raw) == 0 || raw[0] == '"' || json.Unmarshal(raw, &n) != nil {
		return time.Time{}, false
	}
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil || math.Abs(f) >= 1<<62 {
		return time.Time{}, false
	}
	return time.Unix(int64(f), 0), true
}
