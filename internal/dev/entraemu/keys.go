package entraemu

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1" // x5t is defined as the SHA-1 thumbprint of the certificate (RFC 7517); not used for security here
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// signingKey is the tenant's token signing key with the self-signed certificate Entra publishes
// in x5c. kid and x5t are both the base64url SHA-1 certificate thumbprint, as in real Entra.
type signingKey struct {
	priv                *rsa.PrivateKey
	cert                *x509.Certificate
	kid                 string
	x5t                 string
	x5cB64              string // standard base64 DER, as in the x5c array
	notBefore, notAfter time.Time
}

func newSigningKey(supplied any, tenant string) (*signingKey, error) {
	var priv *rsa.PrivateKey
	switch k := supplied.(type) {
	case nil:
		var err error
		if priv, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			return nil, fmt.Errorf("entraemu: generating signing key: %w", err)
		}
	case *rsa.PrivateKey:
		if k.N.BitLen() < 2048 {
			return nil, errors.New("entraemu: SigningKey must be at least 2048 bits")
		}
		priv = k
	default:
		return nil, fmt.Errorf("entraemu: SigningKey must be *rsa.PrivateKey, got %T", supplied)
	}
	now := time.Now().UTC().Truncate(time.Second)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(now.UnixNano()),
		Subject:               pkix.Name{CommonName: "entraemu token signing " + tenant},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(5, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		return nil, fmt.Errorf("entraemu: self-signing the token certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	sum := sha1.Sum(der)
	thumb := base64.RawURLEncoding.EncodeToString(sum[:])
	return &signingKey{
		priv: priv, cert: cert, kid: thumb, x5t: thumb,
		x5cB64:    base64.StdEncoding.EncodeToString(der),
		notBefore: cert.NotBefore, notAfter: cert.NotAfter,
	}, nil
}

// sign produces a compact RS256 JWT. The header carries typ, alg, kid and, for v1 tokens, x5t,
// in the order Entra writes them.
func (k *signingKey) sign(claims map[string]any, withX5t bool) (string, error) {
	var hdr string
	if withX5t {
		hdr = fmt.Sprintf(`{"typ":"JWT","alg":"RS256","x5t":%q,"kid":%q}`, k.x5t, k.kid)
	} else {
		hdr = fmt.Sprintf(`{"typ":"JWT","alg":"RS256","kid":%q}`, k.kid)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	signingInput := base64.RawURLEncoding.EncodeToString([]byte(hdr)) + "." + base64.RawURLEncoding.EncodeToString(payload)
	digest := sha256.Sum256([]byte(signingInput))
	sig, err := rsa.SignPKCS1v15(rand.Reader, k.priv, crypto.SHA256, digest[:])
	if err != nil {
		return "", err
	}
	return signingInput + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}

// verifyErr explains why a JWT was rejected, in the words of AADSTS50013.
type verifyErr struct {
	malformed bool
	reason    string // e.g. "The key was not found."
	thumb     string // kid/x5t the token named
}

func (v *verifyErr) Error() string { return v.reason }

// verify checks an RS256 JWT signed by this key and returns its claims. Time and audience checks
// are the caller's: Entra reports them with different codes.
func (k *signingKey) verify(raw string) (map[string]any, *verifyErr) {
	jws, err := jose.ParseSignedCompact(raw, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil || len(jws.Signatures) != 1 {
		return nil, &verifyErr{malformed: true, reason: "JWT token is invalid or malformed."}
	}
	h := jws.Signatures[0].Header
	thumb := h.KeyID
	if x5t, ok := h.ExtraHeaders["x5t"].(string); ok && thumb == "" {
		thumb = x5t
	}
	if thumb != k.kid {
		return nil, &verifyErr{reason: "The key was not found.", thumb: thumb}
	}
	payload, err := jws.Verify(&k.priv.PublicKey)
	if err != nil {
		return nil, &verifyErr{reason: "The provided signature value did not match the expected signature value.", thumb: thumb}
	}
	var claims map[string]any
	dec := json.NewDecoder(strings.NewReader(string(payload)))
	dec.UseNumber()
	if err := dec.Decode(&claims); err != nil {
		return nil, &verifyErr{malformed: true, reason: "JWT token is invalid or malformed."}
	}
	return claims, nil
}

// jwk is one entry of the JWKS document, with Entra's field order and extra fields.
type jwk struct {
	Kty               string   `json:"kty"`
	Use               string   `json:"use"`
	Kid               string   `json:"kid"`
	X5t               string   `json:"x5t"`
	N                 string   `json:"n"`
	E                 string   `json:"e"`
	X5c               []string `json:"x5c"`
	CloudInstanceName string   `json:"cloud_instance_name,omitempty"`
	Issuer            string   `json:"issuer,omitempty"`
}

func (k *signingKey) jwk(issuer string) jwk {
	e := make([]byte, 8)
	binary.BigEndian.PutUint64(e, uint64(k.priv.PublicKey.E))
	for len(e) > 1 && e[0] == 0 {
		e = e[1:]
	}
	j := jwk{
		Kty: "RSA", Use: "sig", Kid: k.kid, X5t: k.x5t,
		N:   base64.RawURLEncoding.EncodeToString(k.priv.PublicKey.N.Bytes()),
		E:   base64.RawURLEncoding.EncodeToString(e),
		X5c: []string{k.x5cB64},
	}
	if issuer != "" { // v2 key sets name the cloud and issuer; v1 ones do not
		j.CloudInstanceName = "microsoftonline.com"
		j.Issuer = issuer
	}
	return j
}

// PublicKeys returns the token signing keys, for a downstream API stub or a test that verifies tokens.
func (e *Emulator) PublicKeys() jose.JSONWebKeySet {
	sum := sha1.Sum(e.key.cert.Raw)
	s256 := sha256.Sum256(e.key.cert.Raw)
	return jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{
		Key:                         &e.key.priv.PublicKey,
		KeyID:                       e.key.kid,
		Use:                         "sig",
		Certificates:                []*x509.Certificate{e.key.cert},
		CertificateThumbprintSHA1:   sum[:],
		CertificateThumbprintSHA256: s256[:],
	}}}
}

// newOpaque returns n random bytes, base64url encoded: refresh tokens, codes, session cookies.
func newOpaque(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("entraemu: crypto/rand failed: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// newGUID returns a random (version 4) GUID in Entra's lower-case form.
func newGUID() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic("entraemu: crypto/rand failed: " + err.Error())
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return formatGUID(b)
}

// deterministicGUID derives a stable GUID from a name (for service principal ids, policy ids).
func deterministicGUID(name string) string {
	sum := sha256.Sum256([]byte(name))
	b := sum[:16]
	b[6] = b[6]&0x0f | 0x50
	b[8] = b[8]&0x3f | 0x80
	return formatGUID(b)
}

func formatGUID(b []byte) string {
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// hashKey is how stored grants are indexed: never by the secret itself.
func hashKey(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}
