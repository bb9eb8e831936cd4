package callerauth

import (
	"context"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/tokeninjector/caddy-token-injector/internal/entra"
)

// docServer serves whatever bytes the fuzzer chose as the v2 and v1 discovery documents and, at every other path,
// as the JWKS. Its client sends every request to it, whatever host a document names, so a fuzzed jwks_uri never
// leaves the machine.
type docServer struct {
	srv    *httptest.Server
	client *http.Client
	docs   atomic.Pointer[[3][]byte] // v2, v1, jwks
}

func newDocServer(tb testing.TB) *docServer {
	tb.Helper()
	ds := &docServer{}
	ds.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		docs := ds.docs.Load()
		w.Header().Set("Content-Type", "application/json")
		switch {
		case strings.HasSuffix(r.URL.Path, "/v2.0/.well-known/openid-configuration"):
			w.Write(docs[0])
		case strings.HasSuffix(r.URL.Path, "/.well-known/openid-configuration"):
			w.Write(docs[1])
		default:
			w.Write(docs[2])
		}
	}))
	tb.Cleanup(ds.srv.Close)
	tr := ds.srv.Client().Transport.(*http.Transport).Clone()
	addr := ds.srv.Listener.Addr().String()
	tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}
	// The test certificate names example.com; verify against that name whatever the URL's host.
	tr.TLSClientConfig = tr.TLSClientConfig.Clone()
	tr.TLSClientConfig.ServerName = "example.com"
	ds.client = &http.Client{Transport: tr}
	return ds
}

// FuzzDiscoveryAndJWKS feeds arbitrary bytes as both discovery documents and the JWKS, then validates a v2 and a
// v1 token signed with the test key: never a panic (recovered ones included), every error an *InvalidTokenError
// or one wrapping ErrKeysUnavailable, and no token accepted unless the JWKS really publishes the signing key under
// its kid and a discovery document names the token's issuer for the token's tenant.
//
// It drives the whole fetch through HTTP rather than calling tenantFromV2Issuer and getKeys directly: the
// property that matters (what a hostile or broken authority can make us accept) lives in how discover,
// fetchKeys and the claim checks combine, and a local TLS round trip costs well under a millisecond.
func FuzzDiscoveryAndJWKS(f *testing.F) {
	ds := newDocServer(f)
	clock := newClock()
	now := clock.Now()
	pub := &testRSAKey(f, 0).PublicKey
	// A slice, not a map: the same input must run the same way for the fuzzer's coverage to mean anything.
	tokens := []struct{ iss, raw string }{
		{testV2Issuer, sign(f, jose.RS256, testRSAKey(f, 0), "key-1", v2Claims(now), nil)},
		{testV1Issuer, sign(f, jose.RS256, testRSAKey(f, 0), "key-1", v1Claims(now), nil)},
	}

	doc := func(iss, jwks string) []byte {
		b, _ := json.Marshal(map[string]string{"issuer": iss, "jwks_uri": jwks, "token_endpoint": iss + "/oauth2/token"})
		return b
	}
	jwk := func(k jose.JSONWebKey) json.RawMessage { b, _ := k.MarshalJSON(); return b }
	set := func(keys ...json.RawMessage) []byte { b, _ := json.Marshal(map[string]any{"keys": keys}); return b }
	key1 := jwk(jose.JSONWebKey{Key: pub, KeyID: "key-1", Use: "sig", Algorithm: "RS256"})
	other := jwk(jose.JSONWebKey{Key: &testRSAKey(f, 1).PublicKey, KeyID: "key-1", Use: "sig"})
	enc := jwk(jose.JSONWebKey{Key: pub, KeyID: "key-1", Use: "enc"})
	rs512 := jwk(jose.JSONWebKey{Key: pub, KeyID: "key-1", Algorithm: "RS512"})
	noKid := jwk(jose.JSONWebKey{Key: pub, Use: "sig"})
	v2Doc := doc(testV2Issuer, "https://login.microsoftonline.com/"+testTID+"/discovery/v2.0/keys")
	v1Doc := doc(testV1Issuer, "https://login.microsoftonline.com/"+testTID+"/discovery/keys")
	good := set(key1)
	for _, seed := range [][3][]byte{
		{v2Doc, v1Doc, good},
		{v2Doc, v1Doc, set(other, key1)},
		{v2Doc, v1Doc, set(enc, rs512, noKid)},
		{v2Doc, v1Doc, set(json.RawMessage(`{"kty":"EC","kid":"key-1","crv":"P-256","x":"AA","y":"AA"}`), key1)},
		{v2Doc, v1Doc, []byte(`{"keys":null}`)},
		{v2Doc, v1Doc, []byte(`{"keys":[{"kty":"RSA","kid":"key-1","n":"AQAB","e":"AQAB"}]}`)},
		{v2Doc, v1Doc, []byte(`not json`)},
		{v2Doc, []byte(`{}`), good},
		{v2Doc, doc("https://sts.windows.net/00000000-0000-0000-0000-000000000000/", "https://x/keys"), good},
		{v2Doc, doc(testV2Issuer, "https://login.microsoftonline.com/"+testTID+"/discovery/keys"), good},
		{doc("https://login.microsoftonline.com/{tenantid}/v2.0", "https://x/keys"), v1Doc, good},
		{doc("https://login.microsoftonline.com/common/v2.0", "https://x/keys"), v1Doc, good},
		{doc(strings.ToUpper(testV2Issuer), "https://x/keys"), v1Doc, good},
		{doc(testV2Issuer, "http://x/keys"), v1Doc, good},
		{doc(testV2Issuer, ""), v1Doc, good},
		{[]byte(`{"ISSUER":"` + testV2Issuer + `","JWKS_URI":"https://x/k"}`), v1Doc, good},
		{[]byte(``), []byte(``), []byte(``)},
	} {
		f.Add(seed[0], seed[1], seed[2])
	}

	newValidator := func(tb testing.TB, v2, v1, jwks []byte) *Validator {
		ds.docs.Store(&[3][]byte{v2, v1, jwks})
		v, err := New(Config{AuthorityHost: "https://login.microsoftonline.com", Tenant: testDomain,
			Audiences: []string{testClientID, testAppIDURI}, HTTPClient: ds.client, Now: clock.Now,
			MaxCachedTokens: 1, FetchTimeout: 5 * time.Second})
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(v.Close)
		return v
	}
	// The checks below must be able to see an acceptance: Entra's own documents accept both tokens.
	sane := newValidator(f, v2Doc, v1Doc, good)
	for _, tok := range tokens {
		if _, err := sane.Validate(context.Background(), tok.raw, nil); err != nil {
			f.Fatalf("%s token rejected with Entra's documents: %v", tok.iss, err)
		}
	}

	f.Fuzz(func(t *testing.T, v2, v1, jwks []byte) {
		v := newValidator(t, v2, v1, jwks)
		for _, tok := range tokens {
			iss := tok.iss
			id, err := v.Validate(context.Background(), tok.raw, nil)
			if err != nil {
				var inv *InvalidTokenError
				if !errors.As(err, &inv) && !errors.Is(err, ErrKeysUnavailable) {
					t.Fatalf("error is neither invalid-token nor keys-unavailable: %v", err)
				}
				if strings.Contains(err.Error(), "panicked") {
					t.Fatalf("the fetch panicked: %v", err)
				}
				var mis *entra.MisconfiguredError
				var un *entra.UnavailableError
				var ue *entra.UnexpectedError
				if inv == nil && !errors.As(err, &mis) && !errors.As(err, &un) && !errors.As(err, &ue) {
					t.Fatalf("keys-unavailable error says neither misconfigured nor unavailable: %v", err)
				}
				continue
			}
			if !publishes(jwks, "key-1", pub) {
				t.Fatalf("accepted the %s token, but the JWKS does not publish key-1: %s", iss, jwks)
			}
			if why := namesIssuer(v2, v1, iss); why != "" {
				t.Fatalf("accepted the %s token, but %s", iss, why)
			}
			if id.TenantID != testTID {
				t.Fatalf("tenant %q", id.TenantID)
			}
		}
	})
}

// publishes reports whether the JWKS document holds an entry with kid whose n and e are pub's.
func publishes(doc []byte, kid string, pub *rsa.PublicKey) bool {
	var set struct{ Keys []map[string]any }
	if json.Unmarshal(doc, &set) != nil {
		return false
	}
	b64 := func(v any) *big.Int {
		s, _ := v.(string)
		b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
		if err != nil {
			return nil
		}
		return new(big.Int).SetBytes(b)
	}
	for _, k := range set.Keys {
		n, e := b64(k["n"]), b64(k["e"])
		if k["kid"] == kid && n != nil && e != nil && n.Cmp(pub.N) == 0 && e.Int64() == int64(pub.E) {
			return true
		}
	}
	return false
}

// namesIssuer says why iss may not be trusted given the discovery documents, or "" if one of them names it: the
// v2 document's issuer must name the token's tenant, and iss must be that issuer or a v1 issuer naming the tenant,
// each with an https jwks_uri.
func namesIssuer(v2, v1 []byte, iss string) string {
	var d2, d1 discoveryDoc
	if json.Unmarshal(v2, &d2) != nil || !strings.HasPrefix(d2.JWKSURI, "https://") {
		return "the v2 document is unusable"
	}
	if !namesTenant(d2.Issuer) {
		return "the v2 issuer " + d2.Issuer + " does not name the tenant"
	}
	if strings.EqualFold(iss, d2.Issuer) {
		return ""
	}
	if json.Unmarshal(v1, &d1) != nil || !strings.HasPrefix(d1.JWKSURI, "https://") {
		return "the token's issuer is not the v2 issuer and the v1 document is unusable"
	}
	if !namesTenant(d1.Issuer) {
		return "the v1 issuer " + d1.Issuer + " does not name the tenant"
	}
	if !strings.EqualFold(iss, d1.Issuer) {
		return "no document names the issuer " + iss
	}
	return ""
}

// namesTenant reports whether testTID is a path segment of the URL iss.
func namesTenant(iss string) bool {
	u, err := url.Parse(iss)
	return err == nil && u.Host != "" && slices.Contains(strings.Split(u.Path, "/"), testTID)
}
