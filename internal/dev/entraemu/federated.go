package entraemu

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// FederatedCredential is a federated identity credential of an app: tokens of Issuer for Subject, with one of
// Audiences, are accepted as the app's client assertion. Matching is case-sensitive, as in Entra.
type FederatedCredential struct {
	Issuer  string // e.g. an AKS cluster's OIDC issuer URL, or the tenant's v2 issuer for a managed identity
	Subject string // e.g. system:serviceaccount:<namespace>:<name>, or a managed identity's object id
	// Audiences default to api://AzureADTokenExchange.
	Audiences []string
}

// DefaultTokenExchangeAudience is the audience of federated tokens in the public cloud.
const DefaultTokenExchangeAudience = "api://AzureADTokenExchange"

// federatedState holds credentials added at run time (as Graph's addKey and federatedIdentityCredentials do) and
// the OIDC issuers the emulator hosts.
type federatedState struct {
	mu      sync.Mutex
	byApp   map[string][]FederatedCredential // by lower-case client id
	certs   map[string][]*x509.Certificate   // by lower-case client id
	issuers map[string]*WorkloadIssuer       // by name
}

// AddCertificate registers a certificate credential on an app, as an administrator uploading it would.
func (e *Emulator) AddCertificate(clientID string, cert *x509.Certificate) {
	e.federated.mu.Lock()
	defer e.federated.mu.Unlock()
	if e.federated.certs == nil {
		e.federated.certs = map[string][]*x509.Certificate{}
	}
	k := strings.ToLower(clientID)
	e.federated.certs[k] = append(e.federated.certs[k], cert)
}

// confidential reports whether the app has any credential: a secret, a certificate or a federated credential.
func (e *Emulator) confidential(a *App) bool {
	return a.Secret != "" || len(e.appCertificates(a)) > 0 || len(e.federatedCredentials(a)) > 0
}

func (e *Emulator) appCertificates(a *App) []*x509.Certificate {
	e.federated.mu.Lock()
	defer e.federated.mu.Unlock()
	return append(slices.Clone(a.Certificates), e.federated.certs[strings.ToLower(a.ClientID)]...)
}

// AddFederatedCredential adds a federated identity credential to an app, as an administrator would; it applies
// to the next token request.
func (e *Emulator) AddFederatedCredential(clientID string, fc FederatedCredential) {
	if len(fc.Audiences) == 0 {
		fc.Audiences = []string{DefaultTokenExchangeAudience}
	}
	e.federated.mu.Lock()
	defer e.federated.mu.Unlock()
	if e.federated.byApp == nil {
		e.federated.byApp = map[string][]FederatedCredential{}
	}
	k := strings.ToLower(clientID)
	e.federated.byApp[k] = append(e.federated.byApp[k], fc)
}

func (e *Emulator) federatedCredentials(a *App) []FederatedCredential {
	e.federated.mu.Lock()
	defer e.federated.mu.Unlock()
	return append(slices.Clone(a.FederatedCredentials), e.federated.byApp[strings.ToLower(a.ClientID)]...)
}

// checkFederatedAssertion checks a token of another issuer presented as the client assertion: a federated
// credential must name its issuer, subject and audience, and its signature must verify with the issuer's keys.
func (e *Emulator) checkFederatedAssertion(tr *tokenRequest, p *parsedAssertion) *aadError {
	aud := p.claims.audiences()
	match := slices.ContainsFunc(e.federatedCredentials(tr.app), func(fc FederatedCredential) bool {
		audOK := slices.ContainsFunc(aud, func(a string) bool {
			return slices.Contains(fc.Audiences, a) || (len(fc.Audiences) == 0 && a == DefaultTokenExchangeAudience)
		})
		return fc.Issuer == p.claims.Iss && fc.Subject == p.claims.Sub && audOK
	})
	if !match {
		return errNoMatchingFederatedCredential(p.claims.Iss, p.claims.Sub, aud)
	}
	key := e.issuerKey(p.claims.Iss, tr.r)
	if key == nil {
		return &aadError{400, "invalid_request", 700211, "No matching federated identity record found for presented assertion issuer '" + p.claims.Iss + "'. The issuer's signing keys could not be retrieved.", "", ""}
	}
	if _, err := p.jws.Verify(key); err != nil {
		return &aadError{401, "invalid_client", 700027, "Client assertion failed signature validation. [Reason - The provided signature value did not match the expected signature value.]", "", ""}
	}
	if a := e.checkAssertionTime(p.claims, e.now()); a != nil {
		return a
	}
	e.credentials.saw(tr.app.ClientID, func(s *ClientCredentialsSeen) {
		s.Federated++
		s.FederatedIssuers[p.claims.Iss]++
	})
	tr.acr = "2"
	return nil
}

// issuerKey returns the public key that signs tokens of iss: the tenant's own (managed identity tokens) or a
// hosted workload issuer's. Real Entra fetches any issuer's OpenID configuration and JWKS; the emulator trusts
// only the issuers it serves, whose keys are the ones it publishes.
func (e *Emulator) issuerKey(iss string, r *http.Request) *rsa.PublicKey {
	if iss == e.issuerV2(r) || iss == e.issuerV1() {
		return &e.key.priv.PublicKey
	}
	prefix := e.baseURL(r) + workloadIssuerPath
	name, ok := strings.CutPrefix(iss, prefix)
	if !ok {
		return nil
	}
	e.federated.mu.Lock()
	defer e.federated.mu.Unlock()
	if wi := e.federated.issuers[name]; wi != nil {
		return &wi.key.priv.PublicKey
	}
	return nil
}

// workloadIssuerPath is where hosted OIDC issuers live: <base>/_emulator/oidc/<name>.
const workloadIssuerPath = "/_emulator/oidc/"

// WorkloadIssuer is an OIDC issuer the emulator hosts besides the tenant, with a key of its own: a stand-in
// for an AKS cluster's service account issuer. It serves its OpenID configuration and JWKS like one.
type WorkloadIssuer struct {
	e    *Emulator
	name string
	key  *signingKey
}

// WorkloadIssuer returns the hosted issuer called name, creating it (and its key) the first time.
func (e *Emulator) WorkloadIssuer(name string) (*WorkloadIssuer, error) {
	e.federated.mu.Lock()
	defer e.federated.mu.Unlock()
	if wi := e.federated.issuers[name]; wi != nil {
		return wi, nil
	}
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	key, err := newSigningKey(priv, "workload issuer "+name)
	if err != nil {
		return nil, err
	}
	if e.federated.issuers == nil {
		e.federated.issuers = map[string]*WorkloadIssuer{}
	}
	wi := &WorkloadIssuer{e: e, name: name, key: key}
	e.federated.issuers[name] = wi
	return wi, nil
}

// URL is the issuer (iss) of its tokens.
func (w *WorkloadIssuer) URL() string { return w.e.baseURL(nil) + workloadIssuerPath + w.name }

// ServiceAccountToken mints what kubelet projects into a pod for a service account: iss, sub
// system:serviceaccount:<namespace>:<name>, the audience, valid from iat until exp.
func (w *WorkloadIssuer) ServiceAccountToken(namespace, name, audience string, iat, exp time.Time) (string, error) {
	return w.key.sign(map[string]any{
		"aud": []string{audience}, "exp": exp.Unix(), "iat": iat.Unix(), "nbf": iat.Unix(),
		"iss": w.URL(), "jti": newGUID(), "sub": "system:serviceaccount:" + namespace + ":" + name,
		"kubernetes.io": map[string]any{"namespace": namespace, "serviceaccount": map[string]string{"name": name, "uid": deterministicGUID("sa:" + namespace + "/" + name)}},
	}, false)
}

func (e *Emulator) handleWorkloadDiscovery(w http.ResponseWriter, r *http.Request) {
	wi := e.hostedIssuer(r.PathValue("name"))
	if wi == nil {
		http.NotFound(w, r)
		return
	}
	writeDiscoveryJSON(w, r, map[string]any{
		"issuer": wi.URL(), "jwks_uri": wi.URL() + "/openid/v1/jwks",
		"response_types_supported": []string{"id_token"}, "subject_types_supported": []string{"public"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
	})
}

func (e *Emulator) handleWorkloadJWKS(w http.ResponseWriter, r *http.Request) {
	wi := e.hostedIssuer(r.PathValue("name"))
	if wi == nil {
		http.NotFound(w, r)
		return
	}
	writeDiscoveryJSON(w, r, map[string]any{"keys": []jwk{wi.key.jwk("")}})
}

func (e *Emulator) hostedIssuer(name string) *WorkloadIssuer {
	e.federated.mu.Lock()
	defer e.federated.mu.Unlock()
	return e.federated.issuers[name]
}
