package testenv

import (
	"crypto/tls"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/tokeninjector/caddy-token-injector/internal/dev/entraemu"
)

// IdP is one emulated tenant served over real HTTPS, with a CA generated for it.
type IdP struct {
	Emu    *entraemu.Emulator
	Server *entraemu.Server
	CA     *entraemu.CA
	// CAFile holds the CA certificate in PEM, for Caddy's tls_trust_pool file and curl --cacert.
	CAFile string
}

// IdPOptions configures StartIdP.
type IdPOptions struct {
	// Dir receives the CA file; it must exist.
	Dir string
	// ErrorLog receives the server's errors (TLS handshakes, timeouts); nil discards them.
	ErrorLog *log.Logger
}

// StartIdP serves an emulator for cfg on a free loopback port with a new CA.
func StartIdP(cfg entraemu.Config, o IdPOptions) (*IdP, error) {
	emu, err := entraemu.New(cfg)
	if err != nil {
		return nil, err
	}
	ca, err := entraemu.NewCA()
	if err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(o.Dir, "emulator-ca-*.pem")
	if err != nil {
		return nil, err
	}
	_, err = f.Write(ca.CertPEM())
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("writing the CA file: %w", err)
	}
	srv, err := emu.Start(entraemu.ListenOptions{CA: ca, ErrorLog: o.ErrorLog})
	if err != nil {
		return nil, err
	}
	return &IdP{Emu: emu, Server: srv, CA: ca, CAFile: filepath.Clean(f.Name())}, nil
}

// TLSConfig trusts this emulator (and nothing else).
func (p *IdP) TLSConfig() *tls.Config {
	return &tls.Config{RootCAs: p.CA.Pool(), MinVersion: tls.VersionTLS12}
}

// Registration is the token_injector registration JSON for this tenant's add-in app, as a route would configure
// it inline; extra overrides or adds fields (timeout, sign_in, cache_max_entries).
func (p *IdP) Registration(extra map[string]any) map[string]any {
	r := map[string]any{
		"authority_host": p.Server.URL,
		"tenant":         entraemu.DefaultTenantDomain,
		"client_id":      entraemu.DefaultAddinClientID,
		"client_secret":  entraemu.DefaultAddinSecret,
		"audiences":      []string{entraemu.DefaultAddinIdentifierURI},
		"tls_trust_pool": map[string]any{"provider": "file", "pem_files": []string{p.CAFile}},
	}
	for k, v := range extra {
		r[k] = v
	}
	return r
}

// Close stops the server and removes the CA file.
func (p *IdP) Close() {
	_ = p.Server.Close()
	_ = os.Remove(p.CAFile)
}

// AddRedirectURIs registers extra reply URLs (a sign_in site's <origin>/.auth/callback) on cfg's add-in app.
func AddRedirectURIs(cfg *entraemu.Config, uris ...string) {
	for i := range cfg.Apps {
		if cfg.Apps[i].ClientID == entraemu.DefaultAddinClientID {
			cfg.Apps[i].RedirectURIs = append(cfg.Apps[i].RedirectURIs, uris...)
		}
	}
}
