package callerauth

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/tokeninjector/caddy-token-injector/internal/dev/testenv"
)

// Test fixtures: an Entra-like issuer on httptest.NewTLSServer that serves both discovery documents and JWKS.

const (
	testTID      = "72f988bf-86f1-41af-91ab-2d7cd011db47"
	testDomain   = "contoso.onmicrosoft.com"
	testClientID = "0a1b2c3d-1111-2222-3333-444455556666"
	testAppIDURI = "api://localhost/" + testClientID
	testOID      = "00000000-0000-0000-66f3-3332eca7ea81"
	testV2Issuer = "https://login.microsoftonline.com/" + testTID + "/v2.0"
	testV1Issuer = "https://sts.windows.net/" + testTID + "/"
)

var (
	keyPoolOnce sync.Once
	keyPool     []*rsa.PrivateKey
)

// testRSAKey returns one of a few 2048-bit keys generated once per process (generation is slow).
func testRSAKey(tb testing.TB, i int) *rsa.PrivateKey {
	tb.Helper()
	keyPoolOnce.Do(func() {
		for range 4 {
			k, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				panic(err)
			}
			keyPool = append(keyPool, k)
		}
	})
	return keyPool[i]
}

type testKey struct {
	kid  string
	priv *rsa.PrivateKey
}

type testIssuer struct {
	srv *httptest.Server
	tid string

	mu         sync.Mutex
	keys       []testKey // published in both JWKS documents
	v2Status   int       // 0 = 200
	v1Status   int
	jwksStatus int
	jwksBody   string // overrides the JWKS document when set
	sameJWKS   bool   // v1 document names the v2 jwks_uri
	jwksDelay  time.Duration

	v2Fetches, v1Fetches, jwksV2Fetches, jwksV1Fetches atomic.Int64
}

func newTestIssuer(tb testing.TB) *testIssuer {
	tb.Helper()
	ti := &testIssuer{tid: testTID, keys: []testKey{{kid: "key-1", priv: testRSAKey(tb, 0)}}}
	ti.srv = httptest.NewTLSServer(http.HandlerFunc(ti.serve))
	tb.Cleanup(ti.srv.Close)
	return ti
}

func (ti *testIssuer) serve(w http.ResponseWriter, r *http.Request) {
	ti.mu.Lock()
	delay := ti.jwksDelay
	ti.mu.Unlock()
	if delay > 0 && strings.Contains(r.URL.Path, "/discovery/") {
		time.Sleep(delay) // outside the lock, so concurrent fetches overlap like real ones
	}
	ti.mu.Lock()
	defer ti.mu.Unlock()
	// Any tenant name (GUID or domain) in the first segment resolves to ti.tid, like Entra does for its domains.
	path := r.URL.Path
	if _, rest, ok := strings.Cut(strings.TrimPrefix(path, "/"), "/"); ok {
		path = "/{t}/" + rest
	}
	status := func(s int) bool {
		if s != 0 && s != http.StatusOK {
			http.Error(w, "down", s)
			return true
		}
		return false
	}
	w.Header().Set("Content-Type", "application/json")
	switch path {
	case "/{t}/v2.0/.well-known/openid-configuration":
		ti.v2Fetches.Add(1)
		if !status(ti.v2Status) {
			writeJSON(w, map[string]string{"issuer": "https://login.microsoftonline.com/" + ti.tid + "/v2.0", "jwks_uri": ti.srv.URL + "/" + ti.tid + "/discovery/v2.0/keys"})
		}
	case "/{t}/.well-known/openid-configuration":
		ti.v1Fetches.Add(1)
		jwks := ti.srv.URL + "/" + ti.tid + "/discovery/keys"
		if ti.sameJWKS {
			jwks = ti.srv.URL + "/" + ti.tid + "/discovery/v2.0/keys"
		}
		if !status(ti.v1Status) {
			writeJSON(w, map[string]string{"issuer": "https://sts.windows.net/" + ti.tid + "/", "jwks_uri": jwks})
		}
	case "/{t}/discovery/v2.0/keys", "/{t}/discovery/keys":
		if strings.Contains(path, "v2.0") {
			ti.jwksV2Fetches.Add(1)
		} else {
			ti.jwksV1Fetches.Add(1)
		}
		if status(ti.jwksStatus) {
			return
		}
		if ti.jwksBody != "" {
			fmt.Fprint(w, ti.jwksBody)
			return
		}
		set := jose.JSONWebKeySet{}
		for _, k := range ti.keys {
			set.Keys = append(set.Keys, jose.JSONWebKey{Key: &k.priv.PublicKey, KeyID: k.kid, Use: "sig"})
		}
		writeJSON(w, set)
	default:
		http.NotFound(w, r)
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	if err := json.NewEncoder(w).Encode(v); err != nil {
		panic(err)
	}
}

func (ti *testIssuer) set(f func(ti *testIssuer)) {
	ti.mu.Lock()
	defer ti.mu.Unlock()
	f(ti)
}

// newClock is the clock shared by the validator and the token minting.
func newClock() *testenv.Clock { return testenv.NewClock(time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)) }

func newTestValidator(tb testing.TB, ti *testIssuer, clock *testenv.Clock, mod ...func(*Config)) *Validator {
	tb.Helper()
	cfg := Config{
		AuthorityHost: ti.srv.URL,
		Tenant:        testDomain,
		Audiences:     []string{testClientID, testAppIDURI},
		HTTPClient:    ti.srv.Client(),
		Now:           clock.Now,
	}
	for _, m := range mod {
		m(&cfg)
	}
	v, err := New(cfg)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	return v
}

// v2Claims are the claims of an MSAL.js / NAA token for our API; v1Claims those of a v1.0 Office SSO token.
func v2Claims(now time.Time) map[string]any {
	return map[string]any{
		"aud": testClientID, "iss": testV2Issuer, "ver": "2.0", "tid": testTID, "oid": testOID,
		"iat": now.Add(-time.Minute).Unix(), "nbf": now.Add(-time.Minute).Unix(), "exp": now.Add(time.Hour).Unix(),
		"scp": "access_as_user", "azp": "11111111-aaaa-bbbb-cccc-222222222222", "sub": "sub-v2",
		"preferred_username": "adele@contoso.com", "name": "Adele Vance",
	}
}

func v1Claims(now time.Time) map[string]any {
	return map[string]any{
		"aud": testAppIDURI, "iss": testV1Issuer, "ver": "1.0", "tid": testTID, "oid": testOID,
		"iat": now.Add(-time.Minute).Unix(), "nbf": now.Add(-time.Minute).Unix(), "exp": now.Add(time.Hour).Unix(),
		"scp": "access_as_user Files.Read", "appid": "ea5a67f6-b6f3-4338-b240-c655ddc3cc8e", "sub": "sub-v1",
		"upn": "adele@contoso.com", "unique_name": "adele@contoso.com", "name": "Adele Vance",
	}
}

// sign serializes claims as a compact JWS signed with key under alg, with kid (omitted when empty) and any extra
// header fields.
func sign(tb testing.TB, alg jose.SignatureAlgorithm, key any, kid string, claims any, extra map[string]any) string {
	tb.Helper()
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if kid != "" {
		opts = opts.WithHeader("kid", kid)
	}
	for k, v := range extra {
		opts = opts.WithHeader(jose.HeaderKey(k), v)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
	if err != nil {
		tb.Fatalf("NewSigner: %v", err)
	}
	raw, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		tb.Fatalf("Serialize: %v", err)
	}
	return raw
}

// mint signs claims with the issuer's first key, as Entra would.
func (ti *testIssuer) mint(tb testing.TB, claims map[string]any) string {
	tb.Helper()
	ti.mu.Lock()
	k := ti.keys[0]
	ti.mu.Unlock()
	return sign(tb, jose.RS256, k.priv, k.kid, claims, nil)
}

// warm fetches the validator's keys now, as the first request would.
func warm(v *Validator) error {
	_, err := v.keys.current(context.Background(), v.now())
	return err
}

// newWarmValidator is a validator of a new test issuer with its keys fetched.
func newWarmValidator(tb testing.TB) (*testIssuer, *testenv.Clock, *Validator) {
	ti := newTestIssuer(tb)
	clock := newClock()
	v := newTestValidator(tb, ti, clock)
	mustWarm(tb, v)
	return ti, clock, v
}

func mustWarm(tb testing.TB, v *Validator) {
	tb.Helper()
	if err := warm(v); err != nil {
		tb.Fatalf("Warm: %v", err)
	}
}
