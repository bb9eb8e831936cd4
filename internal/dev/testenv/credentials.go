package testenv

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// ClientCertificate is an app's certificate credential written as PEM files, as an operator would keep them.
type ClientCertificate struct {
	Cert     *x509.Certificate
	CertFile string // the certificate, PEM
	KeyFile  string // its RSA key, PEM: PKCS#8 or PKCS#1
}

// NewClientCertificate writes a self-signed certificate valid until notAfter and its RSA-2048 key into dir;
// pkcs1 picks the "RSA PRIVATE KEY" form of the key instead of PKCS#8's "PRIVATE KEY".
func NewClientCertificate(dir, name string, notAfter time.Time, pkcs1 bool) (*ClientCertificate, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: notAfter, KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	keyBlock := &pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}
	if !pkcs1 {
		b, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return nil, err
		}
		keyBlock = &pem.Block{Type: "PRIVATE KEY", Bytes: b}
	}
	c := &ClientCertificate{Cert: cert, CertFile: filepath.Join(dir, name+".crt.pem"), KeyFile: filepath.Join(dir, name+".key.pem")}
	if err := os.WriteFile(c.CertFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		return nil, err
	}
	return c, os.WriteFile(c.KeyFile, pem.EncodeToMemory(keyBlock), 0o600)
}

// ProjectedToken is a projected service account token volume as kubelet writes it: <dir>/token is a symlink to
// ..data/token, ..data a symlink to a timestamped directory, and an update writes a new directory and swaps
// ..data atomically (kubelet's AtomicWriter).
type ProjectedToken struct {
	Dir string

	mu  sync.Mutex
	gen int
	cur string
}

// NewProjectedToken creates the volume in dir with a first token.
func NewProjectedToken(dir, token string) (*ProjectedToken, error) {
	p := &ProjectedToken{Dir: dir}
	if err := p.Write(token); err != nil {
		return nil, err
	}
	return p, os.Symlink(filepath.Join("..data", "token"), filepath.Join(dir, "token"))
}

// Path is the file a pod reads ($AZURE_FEDERATED_TOKEN_FILE).
func (p *ProjectedToken) Path() string { return filepath.Join(p.Dir, "token") }

// Write rotates the token: a new directory, then ..data swapped to it by rename, then the old one removed.
func (p *ProjectedToken) Write(token string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.gen++
	name := fmt.Sprintf("..%s.%d", time.Now().UTC().Format("2006_01_02_15_04_05"), p.gen)
	if err := os.Mkdir(filepath.Join(p.Dir, name), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(p.Dir, name, "token"), []byte(token), 0o644); err != nil {
		return err
	}
	tmp := filepath.Join(p.Dir, "..data_tmp")
	_ = os.Remove(tmp)
	if err := os.Symlink(name, tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(p.Dir, "..data")); err != nil {
		return err
	}
	if p.cur != "" {
		_ = os.RemoveAll(filepath.Join(p.Dir, p.cur))
	}
	p.cur = name
	return nil
}
