package caddymodule

import (
	"cmp"
	"fmt"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"go.uber.org/zap"

	"github.com/tokeninjector/caddy-token-injector/internal/entra"
)

// ClientCertificate is a certificate of the app registration with its private key, instead of a secret.
type ClientCertificate struct {
	// Certificate is the path of a PEM file with the certificate (and its chain, leaf first). Required.
	Certificate string `json:"certificate,omitempty"`
	// Key is the path of a PEM file with the certificate's unencrypted RSA key, PKCS#8 or PKCS#1. Required.
	Key string `json:"key,omitempty"`
	// SendX5C sends the certificate chain (x5c) with each client assertion, which an app that trusts certificates
	// by subject name and issuer (SN/I) needs. Default: off; the thumbprint (x5t#S256) alone names the key.
	SendX5C bool `json:"send_x5c,omitempty"`
}

// ManagedIdentity is the host's managed identity, used as a federated credential of the app registration: its
// token for the token exchange audience (api://AzureADTokenExchange in the public cloud) is the client assertion.
type ManagedIdentity struct {
	// ClientID picks a user-assigned identity by its client id. Default: the system-assigned identity.
	ClientID string `json:"client_id,omitempty"`
}

// certificateWarningWindow is how long before a client certificate expires that each load warns.
const certificateWarningWindow = 30 * 24 * time.Hour

// givenCredential is the credential as written, placeholders unresolved: what the exactly-one rule counts.
func (r Registration) givenCredential() entra.Credential {
	c := entra.Credential{Secret: r.ClientSecret, AssertionFile: r.ClientAssertionFile, ManagedIdentity: r.ManagedIdentity != nil}
	if r.ClientCertificate != nil {
		c.CertificateFile, c.KeyFile = "given", "given"
	}
	return c
}

// resolveCredential resolves the one credential given. Errors name the field; none quotes a secret.
func (r Registration) resolveCredential(repl *caddy.Replacer) (entra.Credential, error) {
	if err := r.givenCredential().CheckOne(); err != nil {
		return entra.Credential{}, err
	}
	var c entra.Credential
	switch {
	case r.ClientSecret != "":
		if c.Secret = repl.ReplaceKnown(r.ClientSecret, ""); c.Secret == "" {
			return c, fmt.Errorf("client_secret: %s resolves to nothing", r.ClientSecret)
		}
	case r.ClientCertificate != nil:
		c.CertificateFile = repl.ReplaceKnown(r.ClientCertificate.Certificate, "")
		c.KeyFile = repl.ReplaceKnown(r.ClientCertificate.Key, "")
		c.SendX5C = r.ClientCertificate.SendX5C
		if c.CertificateFile == "" || c.KeyFile == "" {
			return c, fmt.Errorf("client_certificate: a certificate file and a key file are required")
		}
	case r.ClientAssertionFile != "":
		if c.AssertionFile = repl.ReplaceKnown(r.ClientAssertionFile, ""); c.AssertionFile == "" {
			return c, fmt.Errorf("client_assertion_file: %s resolves to nothing: give the token file's path, or set AZURE_FEDERATED_TOKEN_FILE", r.ClientAssertionFile)
		}
	default:
		c.ManagedIdentity = true
		c.ManagedIdentityClientID = repl.ReplaceKnown(r.ManagedIdentity.ClientID, "")
	}
	return c, nil
}

// overlayCredential gives r the route's credential when the route sets one: a route's credential replaces the
// global option's, whatever its kind, so the two never add up to two.
func overlayCredential(r *Registration, o *Registration) {
	if len(o.givenCredential().Kinds()) == 0 {
		return
	}
	r.ClientSecret, r.ClientCertificate, r.ClientAssertionFile, r.ManagedIdentity =
		o.ClientSecret, o.ClientCertificate, o.ClientAssertionFile, o.ManagedIdentity
}

// logCredential logs, at each load, where managed identity tokens come from, and a client certificate that
// expires within 30 days or has expired.
func logCredential(logger *zap.Logger, c *entra.Client, r settings) {
	if r.Credential.ManagedIdentity {
		logger.Info("the app's credential is the host's managed identity", zap.String("client_id", r.ClientID),
			zap.String("source", entra.ManagedIdentitySource()), zap.String("identity", cmp.Or(r.Credential.ManagedIdentityClientID, "system-assigned")),
			zap.String("audience", entra.TokenExchangeAudience(r.AuthorityHost)))
	}
	notAfter := c.CertificateNotAfter()
	if notAfter.IsZero() {
		return
	}
	left := time.Until(notAfter)
	switch {
	case left <= 0:
		logger.Warn("the client certificate has expired: Entra will refuse it (AADSTS700027); register a new certificate on the app and update client_certificate",
			zap.String("client_id", r.ClientID), zap.Time("not_after", notAfter))
	case left < certificateWarningWindow:
		logger.Warn("the client certificate expires within 30 days: register a new certificate on the app and update client_certificate",
			zap.String("client_id", r.ClientID), zap.Time("not_after", notAfter),
			zap.Int("days_left", int(left/(24*time.Hour))))
	}
}

// unmarshalClientCertificate reads client_certificate <cert.pem> <key.pem> [{ send_x5c }].
func (r *Registration) unmarshalClientCertificate(d *caddyfile.Dispenser) error {
	args := d.RemainingArgs()
	if len(args) != 2 {
		return d.Errf("client_certificate: want <certificate.pem> <key.pem>, got %d arguments", len(args))
	}
	c := &ClientCertificate{Certificate: args[0], Key: args[1]}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch d.Val() {
		case "send_x5c":
			if d.NextArg() {
				return d.ArgErr()
			}
			c.SendX5C = true
		default:
			return d.Errf("client_certificate: unknown option %q", d.Val())
		}
	}
	r.ClientCertificate = c
	return nil
}

// unmarshalAssertionFile reads client_assertion_file [<path>]; without one, AKS's variable names the file.
func (r *Registration) unmarshalAssertionFile(d *caddyfile.Dispenser) error {
	r.ClientAssertionFile = "{env.AZURE_FEDERATED_TOKEN_FILE}"
	if !d.NextArg() {
		return nil
	}
	r.ClientAssertionFile = d.Val()
	if d.NextArg() {
		return d.ArgErr()
	}
	return nil
}

// unmarshalManagedIdentity reads managed_identity [<client id>].
func (r *Registration) unmarshalManagedIdentity(d *caddyfile.Dispenser) error {
	r.ManagedIdentity = &ManagedIdentity{}
	if !d.NextArg() {
		return nil
	}
	r.ManagedIdentity.ClientID = d.Val()
	if d.NextArg() {
		return d.ArgErr()
	}
	return nil
}
