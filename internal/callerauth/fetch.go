package callerauth

import (
	"context"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"

	"github.com/go-jose/go-jose/v4"
	"github.com/tokeninjector/caddy-token-injector/internal/entra"
	"github.com/tokeninjector/caddy-token-injector/internal/identity"
)

const (
	maxDocBytes   = 1 << 20 // discovery and JWKS documents are a few KB
	minRSAKeyBits = 2048
)

type discoveryDoc struct {
	Issuer  string `json:"issuer"`
	JWKSURI string `json:"jwks_uri"`
}

// discover fetches the v2 and v1 OpenID configuration documents. v2 is required (it names the tenant GUID); v1 is
// optional and, when missing, only v2 tokens are accepted.
func (s *keyStore) discover(ctx context.Context) (discovery, error) {
	base := s.authority + "/" + url.PathEscape(s.tenant)
	var v2, v1 discoveryDoc
	var err2, err1 error
	var wg sync.WaitGroup
	wg.Go(func() { v2, err2 = s.getDiscovery(ctx, base+"/v2.0/.well-known/openid-configuration") })
	wg.Go(func() { v1, err1 = s.getDiscovery(ctx, base+"/.well-known/openid-configuration") })
	wg.Wait()
	if err2 != nil {
		return discovery{}, err2
	}
	if entra.IsMultiTenant(s.tenant) {
		return s.multiTenantDiscovery(v2, v1, err1)
	}
	tid, err := tenantFromV2Issuer(v2.Issuer)
	if err != nil {
		return discovery{}, s.misconfigured(err, "authority_host does not serve Entra's discovery documents")
	}
	if identity.IsGUID(s.tenant) && !strings.EqualFold(s.tenant, tid) {
		return discovery{}, s.misconfigured(fmt.Errorf("discovery for tenant %s names tenant %s", s.tenant, tid),
			"the discovery document does not match the tenant: check tenant and authority_host")
	}
	d := discovery{tenantID: tid, v2Issuer: v2.Issuer, v2JWKS: v2.JWKSURI}
	// A v1 issuer must name the same tenant, so a confused document cannot widen what we accept.
	if err1 == nil && issuerNamesTenant(v1.Issuer, tid) {
		d.v1Issuer, d.v1JWKS = v1.Issuer, v1.JWKSURI
	}
	return d, nil
}

func (s *keyStore) getDiscovery(ctx context.Context, u string) (discoveryDoc, error) {
	var doc discoveryDoc
	if err := s.getJSON(ctx, u, &doc); err != nil {
		return doc, err
	}
	if doc.Issuer == "" {
		return doc, s.misconfigured(fmt.Errorf("%s has no issuer", u), "authority_host does not serve Entra's discovery documents")
	}
	if j, err := url.Parse(doc.JWKSURI); err != nil || j.Host == "" || j.Scheme != "https" {
		return doc, s.misconfigured(fmt.Errorf("%s has no https jwks_uri", u), "authority_host does not serve Entra's discovery documents")
	}
	return doc, nil
}

// tenantFromV2Issuer extracts {tid} from https://login.microsoftonline.com/{tid}/v2.0.
func tenantFromV2Issuer(iss string) (string, error) {
	u, err := url.Parse(iss)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("v2 issuer %q is not a URL", iss)
	}
	parts := strings.Split(strings.Trim(u.Path, "/"), "/")
	if len(parts) < 2 || parts[len(parts)-1] != "v2.0" {
		return "", fmt.Errorf("v2 issuer %q does not end in /{tenant}/v2.0", iss)
	}
	tid := parts[len(parts)-2]
	if tid == "" || strings.ContainsAny(tid, "{}") {
		return "", fmt.Errorf("v2 issuer %q names no single tenant", iss)
	}
	return tid, nil
}

// issuerNamesTenant reports whether tid is a path segment of iss (https://sts.windows.net/{tid}/ in real Entra).
func issuerNamesTenant(iss, tid string) bool {
	u, err := url.Parse(iss)
	if err != nil || u.Host == "" {
		return false
	}
	return slices.Contains(strings.Split(u.Path, "/"), tid)
}

// fetchKeys gets the JWKS of both issuers (once if they share a jwks_uri) and merges them by kid. The v1 keys are
// optional like the v1 document: if they fail, the v1 issuer is dropped until the next refresh.
func (s *keyStore) fetchKeys(ctx context.Context, d discovery) (map[string]*rsa.PublicKey, discovery, error) {
	var k2, k1 map[string]*rsa.PublicKey
	var err2, err1 error
	var wg sync.WaitGroup
	wg.Go(func() { k2, err2 = s.getKeys(ctx, d.v2JWKS) })
	if d.v1Issuer != "" && d.v1JWKS != d.v2JWKS {
		wg.Go(func() { k1, err1 = s.getKeys(ctx, d.v1JWKS) })
	}
	wg.Wait()
	if err2 != nil {
		return nil, d, err2
	}
	if err1 != nil {
		d.v1Issuer, d.v1JWKS = "", ""
	}
	for kid, k := range k1 {
		if _, ok := k2[kid]; !ok {
			k2[kid] = k
		}
	}
	return k2, d, nil
}

// getKeys parses a JWKS key by key, skipping what we cannot use (other key types, encryption keys, odd entries)
// rather than failing the whole document.
func (s *keyStore) getKeys(ctx context.Context, u string) (map[string]*rsa.PublicKey, error) {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := s.getJSON(ctx, u, &doc); err != nil {
		return nil, err
	}
	keys := make(map[string]*rsa.PublicKey, len(doc.Keys))
	for _, raw := range doc.Keys {
		var jwk jose.JSONWebKey
		if err := jwk.UnmarshalJSON(raw); err != nil {
			continue
		}
		pub, ok := jwk.Key.(*rsa.PublicKey)
		if !ok || jwk.KeyID == "" || (jwk.Use != "" && jwk.Use != "sig") ||
			(jwk.Algorithm != "" && jwk.Algorithm != string(jose.RS256)) || pub.N.BitLen() < minRSAKeyBits {
			continue
		}
		if _, dup := keys[jwk.KeyID]; !dup {
			keys[jwk.KeyID] = pub
		}
	}
	if len(keys) == 0 {
		return nil, s.misconfigured(fmt.Errorf("%s has no usable RSA signing keys", u), "authority_host does not serve Entra's signing keys")
	}
	return keys, nil
}

// misconfigured reports a document that is not what Entra serves: retrying will not help.
func (s *keyStore) misconfigured(err error, fix string) error {
	return fmt.Errorf("%w: %w", ErrKeysUnavailable, &entra.MisconfiguredError{Op: "fetching signing keys",
		Host: strings.TrimPrefix(s.authority, "https://"), Err: err, Fix: fix})
}

// getJSON GETs u within FetchTimeout and decodes a 200 answer of at most maxDocBytes into dst.
func (s *keyStore) getJSON(ctx context.Context, u string, dst any) error {
	f := s.fetcher.Load()
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	body, err := entra.FetchDocument(ctx, f.client, "fetching signing keys", u, maxDocBytes)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrKeysUnavailable, err)
	}
	if err := json.Unmarshal(body, dst); err != nil {
		return s.misconfigured(fmt.Errorf("GET %s: %w", u, err), "authority_host does not serve Entra's documents")
	}
	return nil
}
