package entraemu

import (
	"crypto/sha1" // x5t is the certificate's SHA-1 thumbprint by definition (RFC 7515); not used for security here
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Client assertions (RFC 7523 private_key_jwt), as Entra checks them. An assertion whose iss and sub are the
// client id is signed by one of the app's registered certificates (found by x5t or x5t#S256); any other is a
// federated credential: a token of another issuer (a Kubernetes service account, a managed identity) that one of
// the app's federated identity credentials names by issuer, subject and audience.
//
// The messages of AADSTS700027, 700024 and 70021 are Entra's, as users have quoted them. Entra's words for a
// wrong aud or a replayed jti are not documented: the emulator answers those with AADSTS50027 (invalid JWT) and
// says which check failed. Federated tokens, unlike certificate-signed assertions, may be presented many times
// (a projected token serves for its lifetime), so their jti is not tracked.

const clientAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// assertionSkew is the clock skew Entra allows on an assertion's exp and nbf.
const assertionSkew = 5 * time.Minute

// maxAssertionLifetime bounds how far in the future a certificate-signed assertion may expire, which also
// bounds how long its jti must be remembered.
const maxAssertionLifetime = 24 * time.Hour

// assertionClaims are the claims of a client assertion Entra reads.
type assertionClaims struct {
	Iss string          `json:"iss"`
	Sub string          `json:"sub"`
	Aud json.RawMessage `json:"aud"`
	Exp json.Number     `json:"exp"`
	Nbf json.Number     `json:"nbf"`
	Jti string          `json:"jti"`
}

func (c assertionClaims) audiences() []string {
	var one string
	if json.Unmarshal(c.Aud, &one) == nil {
		return []string{one}
	}
	var many []string
	_ = json.Unmarshal(c.Aud, &many)
	return many
}

func unixOf(n json.Number) (time.Time, bool) {
	v, err := n.Int64()
	if err != nil {
		return time.Time{}, false
	}
	return time.Unix(v, 0), true
}

// parsedAssertion is a client assertion split into its parts, not yet verified.
type parsedAssertion struct {
	jws    *jose.JSONWebSignature
	header map[string]any
	claims assertionClaims
}

func parseAssertion(raw string) (*parsedAssertion, *aadError) {
	jws, err := jose.ParseSignedCompact(raw, []jose.SignatureAlgorithm{jose.RS256, jose.PS256})
	if err != nil || len(jws.Signatures) != 1 {
		return nil, errMalformedAssertion()
	}
	p := &parsedAssertion{jws: jws}
	first, _, _ := strings.Cut(raw, ".")
	hb, err1 := base64.RawURLEncoding.DecodeString(first)
	err2 := json.Unmarshal(hb, &p.header)
	dec := json.NewDecoder(strings.NewReader(string(jws.UnsafePayloadWithoutVerification())))
	dec.UseNumber()
	if err1 != nil || err2 != nil || dec.Decode(&p.claims) != nil {
		return nil, errMalformedAssertion()
	}
	return p, nil
}

// authenticateAssertion authenticates the client by its client_assertion.
func (e *Emulator) authenticateAssertion(tr *tokenRequest) *aadError {
	switch t := tr.form.Get("client_assertion_type"); {
	case t == "":
		return errMissingParam("client_assertion_type")
	case t != clientAssertionType:
		return &aadError{400, "invalid_request", 50027, "JWT token is invalid or malformed.", "", ""}
	}
	p, a := parseAssertion(tr.form.Get("client_assertion"))
	if a != nil {
		return a
	}
	if strings.EqualFold(p.claims.Iss, tr.app.ClientID) && strings.EqualFold(p.claims.Sub, tr.app.ClientID) {
		return e.checkCertificateAssertion(tr, p)
	}
	return e.checkFederatedAssertion(tr, p)
}

// checkCertificateAssertion checks an assertion the app signed with a registered certificate.
func (e *Emulator) checkCertificateAssertion(tr *tokenRequest, p *parsedAssertion) *aadError {
	x5t, _ := p.header["x5t"].(string)
	x5t256, _ := p.header["x5t#S256"].(string)
	if x5t == "" && x5t256 == "" {
		return &aadError{400, "invalid_request", 50027, "Invalid JWT token. No certificate thumbprint specified in token header.", "", ""}
	}
	cert, thumb := certificateByThumbprint(e.appCertificates(tr.app), x5t, x5t256)
	if cert == nil {
		return errCertificateNotRegistered(thumb, tr.app.ClientID)
	}
	if _, err := p.jws.Verify(cert.PublicKey); err != nil {
		return errAssertionBadSignature(thumb, cert, tr.app.ClientID)
	}
	now := e.now()
	if now.After(cert.NotAfter) || now.Before(cert.NotBefore) {
		return &aadError{401, "invalid_client", 7000274, fmt.Sprintf("The certificate used to sign the client assertion is not within its validity period. Thumbprint of key used by client: '%s'.", thumb), "", ""}
	}
	if a := e.checkAssertionTime(p.claims, now); a != nil {
		return a
	}
	if !e.isTokenEndpoint(tr, p.claims.audiences()) {
		return &aadError{400, "invalid_request", 50027, fmt.Sprintf("Invalid JWT token. The audience of the client assertion is not the token endpoint of tenant '%s'.", e.tenant), "", ""}
	}
	if p.claims.Jti == "" {
		return &aadError{400, "invalid_request", 50027, "Invalid JWT token. The token has no 'jti' claim.", "", ""}
	}
	exp, _ := unixOf(p.claims.Exp)
	if !e.credentials.useJTI(tr.app.ClientID, p.claims.Jti, exp, now) {
		return &aadError{400, "invalid_request", 50027, "Invalid JWT token. The client assertion's 'jti' was used before: an assertion can be used only once.", "", ""}
	}
	_, x5c := p.header["x5c"]
	e.credentials.saw(tr.app.ClientID, func(s *ClientCredentialsSeen) {
		s.Certificate++
		if x5c {
			s.X5C++
		}
	})
	tr.acr = "2"
	return nil
}

// checkAssertionTime applies Entra's exp/nbf rule: AADSTS700024 with the times in .NET format.
func (e *Emulator) checkAssertionTime(c assertionClaims, now time.Time) *aadError {
	exp, okExp := unixOf(c.Exp)
	nbf, okNbf := unixOf(c.Nbf)
	if !okNbf {
		nbf = time.Unix(0, 0)
	}
	if !okExp || now.After(exp.Add(assertionSkew)) || (okNbf && nbf.After(now.Add(assertionSkew))) ||
		exp.After(now.Add(maxAssertionLifetime)) {
		return errAssertionTimeRange(now, nbf, exp)
	}
	return nil
}

// isTokenEndpoint reports whether one of aud is this tenant's token endpoint (v1 or v2, by GUID or domain).
func (e *Emulator) isTokenEndpoint(tr *tokenRequest, aud []string) bool {
	base := e.baseURL(tr.r)
	for _, a := range aud {
		for _, t := range []string{e.tenant, e.domain, tr.r.PathValue("tenant")} {
			if strings.EqualFold(a, base+"/"+t+"/oauth2/v2.0/token") || strings.EqualFold(a, base+"/"+t+"/oauth2/token") {
				return true
			}
		}
	}
	return false
}

// certificateByThumbprint finds a registered certificate by its SHA-1 (x5t) or SHA-256 (x5t#S256) thumbprint,
// base64url or standard base64 (MSAL Go sends the latter). It returns the thumbprint as Entra prints it.
func certificateByThumbprint(certs []*x509.Certificate, x5t, x5t256 string) (*x509.Certificate, string) {
	want1, want256 := decodeThumb(x5t), decodeThumb(x5t256)
	for _, c := range certs {
		s1, s256 := sha1.Sum(c.Raw), sha256.Sum256(c.Raw)
		if (want1 != nil && string(want1) == string(s1[:])) || (want256 != nil && string(want256) == string(s256[:])) {
			return c, strings.ToUpper(hex.EncodeToString(s1[:]))
		}
	}
	shown := want1
	if shown == nil {
		shown = want256
	}
	return nil, strings.ToUpper(hex.EncodeToString(shown))
}

func decodeThumb(s string) []byte {
	if s == "" {
		return nil
	}
	for _, enc := range []*base64.Encoding{base64.RawURLEncoding, base64.URLEncoding, base64.StdEncoding, base64.RawStdEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b
		}
	}
	return []byte(s)
}

// ClientCredentialsSeen is how an app authenticated at the token endpoint: what the emulator saw, so a test can
// prove that no secret was sent where none was configured.
type ClientCredentialsSeen struct {
	Secret      int `json:"secret"`      // client_secret_post or client_secret_basic
	Certificate int `json:"certificate"` // a client assertion signed by a registered certificate
	X5C         int `json:"x5c"`         // of those, assertions that carried the certificate chain
	Federated   int `json:"federated"`   // a federated credential (workload identity, managed identity)
	// FederatedIssuers counts federated assertions by issuer.
	FederatedIssuers map[string]int `json:"federated_issuers,omitempty"`
}

// credentialLog records client authentications, managed identity tokens and used jti values.
type credentialLog struct {
	mu      sync.Mutex
	byApp   map[string]*ClientCredentialsSeen // by lower-case client id
	miCalls map[string]int                    // managed identity tokens issued, by identity client id
	jtis    map[string]time.Time              // client id + jti -> expiry
}

func (l *credentialLog) saw(clientID string, f func(*ClientCredentialsSeen)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.byApp == nil {
		l.byApp = map[string]*ClientCredentialsSeen{}
	}
	k := strings.ToLower(clientID)
	if l.byApp[k] == nil {
		l.byApp[k] = &ClientCredentialsSeen{FederatedIssuers: map[string]int{}}
	}
	f(l.byApp[k])
}

// useJTI records a jti and reports whether it was new. Expired entries are dropped as new ones come.
func (l *credentialLog) useJTI(clientID, jti string, exp, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.jtis == nil {
		l.jtis = map[string]time.Time{}
	}
	for k, until := range l.jtis {
		if now.After(until.Add(assertionSkew)) {
			delete(l.jtis, k)
		}
	}
	k := strings.ToLower(clientID) + "\x00" + jti
	if _, used := l.jtis[k]; used {
		return false
	}
	l.jtis[k] = exp
	return true
}

// ClientCredentials returns how the app authenticated so far.
func (e *Emulator) ClientCredentials(clientID string) ClientCredentialsSeen {
	e.credentials.mu.Lock()
	defer e.credentials.mu.Unlock()
	s, ok := e.credentials.byApp[strings.ToLower(clientID)]
	if !ok {
		return ClientCredentialsSeen{FederatedIssuers: map[string]int{}}
	}
	out := *s
	out.FederatedIssuers = map[string]int{}
	for k, v := range s.FederatedIssuers {
		out.FederatedIssuers[k] = v
	}
	return out
}

// The catalogue of client assertion errors, in Entra's words.

func errCertificateNotRegistered(thumb, clientID string) *aadError {
	return &aadError{401, "invalid_client", 700027, fmt.Sprintf("The certificate with identifier used to sign the client assertion is not registered on application. [Reason - The key was not found., Thumbprint of key used by client: '%s', Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '%s'. Review the documentation at https://docs.microsoft.com/en-us/graph/deployments to determine the corresponding service endpoint and https://docs.microsoft.com/en-us/graph/api/application-get?view=graph-rest-1.0&tabs=http to build a query request URL, such as 'https://graph.microsoft.com/beta/applications/%s']. Alternatively, SNI may be configured on the app. Please ensure that client assertion is being sent with the x5c claim in the JWT header using MSAL's WithSendX5C() method so that Azure Active Directory can validate the certificate being used.", thumb, clientID, clientID), "", ""}
}

func errAssertionBadSignature(thumb string, cert *x509.Certificate, clientID string) *aadError {
	return &aadError{401, "invalid_client", 700027, fmt.Sprintf("Client assertion contains an invalid signature. [Reason - The provided signature value did not match the expected signature value., Thumbprint of key used by client: '%s', Found key 'Start=%s, End=%s', Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '%s'.]", thumb, cert.NotBefore.UTC().Format("01/02/2006 15:04:05"), cert.NotAfter.UTC().Format("01/02/2006 15:04:05"), clientID), "", ""}
}

func errAssertionTimeRange(now, nbf, exp time.Time) *aadError {
	return &aadError{401, "invalid_client", 700024, fmt.Sprintf("Client assertion is not within its valid time range. Current time: %s, assertion valid from %s, expiry time of assertion %s. Review the documentation at https://learn.microsoft.com/entra/identity-platform/certificate-credentials .", dotnetTime(now), dotnetTime(nbf), dotnetTime(exp)), "", ""}
}

func errNoMatchingFederatedCredential(iss, sub string, aud []string) *aadError {
	return &aadError{400, "invalid_request", 70021, fmt.Sprintf("No matching federated identity record found for presented assertion. Assertion Issuer: '%s'. Assertion Subject: '%s'. Assertion Audience: '%s'. https://learn.microsoft.com/entra/workload-id/workload-identity-federation", iss, sub, strings.Join(aud, ",")), "", ""}
}
