package entra

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/confidential"
)

// Credential is how the app registration proves itself to Entra. Exactly one way is set: a client secret, a
// certificate (MSAL signs a client assertion with its key), a federated token file (workload identity), or a
// managed identity whose token is the client assertion. Its values are secrets or name them: none is ever
// written to a log or an error.
type Credential struct {
	Secret string
	// CertificateFile and KeyFile are PEM files: the certificate (and its chain) and its RSA key, PKCS#8 or
	// PKCS#1, unencrypted.
	CertificateFile, KeyFile string
	// SendX5C sends the certificate chain with each assertion, as subject name / issuer registrations need.
	SendX5C bool
	// AssertionFile is a federated token file, such as AKS's $AZURE_FEDERATED_TOKEN_FILE; it is re-read when the
	// file changes.
	AssertionFile string
	// ManagedIdentity uses the host's managed identity; ManagedIdentityClientID picks a user-assigned one.
	ManagedIdentity         bool
	ManagedIdentityClientID string
}

// Credential kinds, as the configuration names them.
const (
	KindSecret          = "client_secret"
	KindCertificate     = "client_certificate"
	KindAssertionFile   = "client_assertion_file"
	KindManagedIdentity = "managed_identity"
)

// Kinds names every kind of credential c sets, in a fixed order. A valid credential has exactly one.
func (c Credential) Kinds() []string {
	var kinds []string
	for _, k := range []struct {
		name string
		set  bool
	}{
		{KindSecret, c.Secret != ""},
		{KindCertificate, c.CertificateFile != "" || c.KeyFile != ""},
		{KindAssertionFile, c.AssertionFile != ""},
		{KindManagedIdentity, c.ManagedIdentity},
	} {
		if k.set {
			kinds = append(kinds, k.name)
		}
	}
	return kinds
}

// Kind is the credential's one kind, or "" when it sets none or several.
func (c Credential) Kind() string {
	if k := c.Kinds(); len(k) == 1 {
		return k[0]
	}
	return ""
}

// CheckOne reports an error naming every credential given unless exactly one is.
func (c Credential) CheckOne() error {
	switch kinds := c.Kinds(); len(kinds) {
	case 1:
		return nil
	case 0:
		return errors.New("a credential is required: set exactly one of client_secret, client_certificate, " +
			"client_assertion_file or managed_identity")
	case 2:
		return fmt.Errorf("%s and %s are both set: set exactly one credential", kinds[0], kinds[1])
	default:
		last := len(kinds) - 1
		return fmt.Errorf("%s and %s are all set: set exactly one credential", strings.Join(kinds[:last], ", "), kinds[last])
	}
}

// credentialSource is a built credential: what MSAL gets, plus what the proxy reports about it.
type credentialSource struct {
	cred confidential.Credential
	// x5c asks MSAL to send the certificate chain.
	x5c bool
	// notAfter is the certificate's expiry; zero for other kinds.
	notAfter time.Time
	// mi is kept across reloads that keep the same identity, so its shared token survives.
	mi *managedIdentityAssertion
}

// buildCredential loads c: it reads the certificate and key, checks the token file, or sets up the managed
// identity client. Errors name the field and what to fix, never a value's contents.
func buildCredential(c Credential, authorityHost string, prev *credentialSource, deps credentialDeps) (*credentialSource, error) {
	if err := c.CheckOne(); err != nil {
		return nil, err
	}
	switch c.Kind() {
	case KindSecret:
		cred, err := confidential.NewCredFromSecret(c.Secret)
		if err != nil {
			return nil, fmt.Errorf("client_secret: %w", err)
		}
		return &credentialSource{cred: cred}, nil
	case KindCertificate:
		return loadCertificate(c)
	case KindAssertionFile:
		f, err := newAssertionFile(c.AssertionFile)
		if err != nil {
			return nil, err
		}
		return &credentialSource{cred: confidential.NewCredFromAssertionCallback(f.assertion)}, nil
	default:
		audience := TokenExchangeAudience(authorityHost)
		if prev != nil && prev.mi != nil && prev.mi.same(c.ManagedIdentityClientID, audience) {
			prev.mi.http.set(deps.http)
			return prev, nil
		}
		mi, err := newManagedIdentityAssertion(c.ManagedIdentityClientID, audience, deps)
		if err != nil {
			return nil, err
		}
		return &credentialSource{cred: confidential.NewCredFromAssertionCallback(mi.assertion), mi: mi}, nil
	}
}

// maxPEMBytes bounds a certificate or key file: a chain of a few certificates is a few KB.
const maxPEMBytes = 1 << 20

// loadCertificate reads the certificate and key files. The key must be RSA: MSAL signs with PS256.
func loadCertificate(c Credential) (*credentialSource, error) {
	if c.CertificateFile == "" || c.KeyFile == "" {
		return nil, errors.New("client_certificate: needs a certificate file and a key file")
	}
	certPEM, err := readBounded(c.CertificateFile, maxPEMBytes)
	if err != nil {
		return nil, fmt.Errorf("client_certificate: certificate file: %w", err)
	}
	keyPEM, err := readBounded(c.KeyFile, maxPEMBytes)
	if err != nil {
		return nil, fmt.Errorf("client_certificate: key file: %w", err)
	}
	certs := pemCertificates(certPEM)
	if len(certs) == 0 {
		return nil, fmt.Errorf("client_certificate: %s holds no PEM certificate", c.CertificateFile)
	}
	both := append(append([]byte{}, certPEM...), keyPEM...)
	if c.KeyFile == c.CertificateFile { // one file holding both, as Key Vault exports it
		both = certPEM
	}
	_, key, err := confidential.CertFromPEM(both, "")
	if err != nil || key == nil {
		// CertFromPEM's error may quote the key's PEM block type only; still, say it in words of our own.
		return nil, fmt.Errorf("client_certificate: %s holds no unencrypted PKCS#8 or PKCS#1 private key", c.KeyFile)
	}
	if !matchesKey(certs[0], key) {
		return nil, fmt.Errorf("client_certificate: the key in %s is not the key of the certificate in %s", c.KeyFile, c.CertificateFile)
	}
	cred, err := confidential.NewCredFromCert(certs, key)
	if err != nil {
		return nil, fmt.Errorf("client_certificate: %w", err) // "key must be an RSA key"
	}
	return &credentialSource{cred: cred, x5c: c.SendX5C, notAfter: certs[0].NotAfter}, nil
}

// pemCertificates parses the file's CERTIFICATE blocks, leaf first.
func pemCertificates(b []byte) []*x509.Certificate {
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		if block, b = pem.Decode(b); block == nil {
			return certs
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		if c, err := x509.ParseCertificate(block.Bytes); err == nil {
			certs = append(certs, c)
		}
	}
}

// matchesKey reports whether key is the private key of cert's public key.
func matchesKey(cert *x509.Certificate, key any) bool {
	pub, ok := key.(crypto.Signer)
	if !ok {
		return false
	}
	eq, ok := pub.Public().(interface{ Equal(crypto.PublicKey) bool })
	return ok && eq.Equal(cert.PublicKey)
}

// readBounded reads a file of at most limit bytes.
func readBounded(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, pathError(err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, pathError(err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return b, nil
}

// pathError keeps an os error's operation and path and says what fixes it.
func pathError(err error) error {
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("%w (check the path; in a pod, that the volume is mounted)", err)
	case errors.Is(err, os.ErrPermission):
		return fmt.Errorf("%w (the proxy's user cannot read it)", err)
	}
	return err
}
