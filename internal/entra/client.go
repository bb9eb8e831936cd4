// Package entra is the Entra ID adapter: it owns MSAL Go and Entra's wire format. It turns the acquisition
// engine's requests into MSAL calls, and every failure into a typed error (*Error when Entra answered,
// *UnavailableError when retrying can help, *MisconfiguredError when only the operator can), never into an HTTP
// answer: the contract package decides what the client gets.
package entra

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/cache"
	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/confidential"
	msalerrors "github.com/AzureAD/microsoft-authentication-library-for-go/apps/errors"

	"github.com/tokeninjector/caddy-token-injector/internal/acquire"
	"github.com/tokeninjector/caddy-token-injector/internal/tokencache"
)

// Config describes the app registration the proxy acts as.
type Config struct {
	// AuthorityHost is the cloud's sign-in host, e.g. https://login.microsoftonline.com.
	AuthorityHost string
	Tenant        string
	ClientID      string
	// Credential is how the app proves itself: exactly one kind of it is set.
	Credential Credential
	// Capabilities are the client capabilities declared on every token request (cp1: the app handles CAE
	// claims challenges, so Entra issues long-lived CAE tokens). Default: none.
	Capabilities []string
	// HTTPClient carries every call to Entra (see NewHTTPClient); its transport decides which CAs are trusted.
	HTTPClient *http.Client
}

// Client speaks the protocol through MSAL Go. The proxy owns the token cache, so every identity-provider call gets
// a fresh MSAL client that is dropped afterwards: MSAL's in-memory cache is unbounded, and shared clients race on
// external caches. The discovery document, which each new client would fetch, is cached by the transport
// (NewHTTPClient).
type Client struct {
	authority string
	clientID  string
	host      string
	conn      atomic.Pointer[connection] // replaced whole by Update
}

// connection is what a reload may change without making it another registration: the credential and the HTTP
// client (a new trust pool).
type connection struct {
	cred         *credentialSource
	http         *http.Client
	capabilities []string
}

// New checks the configuration. It makes no network calls.
func New(c Config) (*Client, error) {
	m := &Client{
		authority: strings.TrimSuffix(c.AuthorityHost, "/") + "/" + url.PathEscape(c.Tenant),
		clientID:  c.ClientID,
		host:      hostOf(c.AuthorityHost),
	}
	if err := m.Update(c); err != nil {
		return nil, err
	}
	return m, nil
}

// Update applies a new credential and HTTP client to the registration; calls already under way finish with the
// old ones.
func (m *Client) Update(c Config) error {
	var prev *credentialSource
	if old := m.conn.Load(); old != nil {
		prev = old.cred
	}
	cred, err := buildCredential(c.Credential, m.host, prev, credentialDeps{http: c.HTTPClient})
	if err != nil {
		return err
	}
	conn := &connection{cred: cred, http: c.HTTPClient, capabilities: c.Capabilities}
	if _, err := m.newMSAL(conn, nil); err != nil {
		return err
	}
	m.conn.Store(conn)
	return nil
}

// CertificateNotAfter is when the client certificate expires; zero for other credentials.
func (m *Client) CertificateNotAfter() time.Time { return m.conn.Load().cred.notAfter }

// msal returns a new MSAL client; store, when set, is the external cache MSAL loads from and exports to.
func (m *Client) msal(store cache.ExportReplace) (confidential.Client, error) {
	return m.newMSAL(m.conn.Load(), store)
}

func (m *Client) newMSAL(conn *connection, store cache.ExportReplace) (confidential.Client, error) {
	opts := []confidential.Option{
		confidential.WithHTTPClient(conn.http),
		// Tenant discovery through the OpenID document works in every cloud and in the emulator; instance
		// discovery would call login.microsoftonline.com, which a sovereign cloud or an offline host can't reach.
		confidential.WithInstanceDiscovery(false),
	}
	if store != nil {
		opts = append(opts, confidential.WithCache(store))
	}
	if conn.cred.x5c {
		opts = append(opts, confidential.WithX5C())
	}
	if len(conn.capabilities) > 0 {
		// MSAL merges them into every request's claims parameter as xms_cc, with any claims challenge.
		opts = append(opts, confidential.WithClientCapabilities(conn.capabilities))
	}
	c, err := confidential.New(m.authority, m.clientID, conn.cred.cred, opts...)
	if err != nil {
		return c, fmt.Errorf("authority %q: %w", m.authority, err)
	}
	return c, nil
}

// OnBehalfOf implements acquire.Provider with the jwt-bearer grant, in g.Tenant when set (the caller's tenant on
// a multi-tenant registration).
func (m *Client) OnBehalfOf(ctx context.Context, assertion string, g acquire.Grant) (tokencache.Token, error) {
	client, err := m.msal(nil)
	if err != nil {
		return tokencache.Token{}, err
	}
	const op = "on-behalf-of token request"
	var opts []confidential.AcquireOnBehalfOfOption
	if g.Tenant != "" {
		opts = append(opts, confidential.WithTenantID(g.Tenant))
	}
	if g.Claims != "" {
		opts = append(opts, confidential.WithClaims(g.Claims))
	}
	r, err := client.AcquireTokenOnBehalfOf(ctx, assertion, g.Scopes, opts...)
	if err != nil {
		return tokencache.Token{}, m.failed(ctx, op, err)
	}
	return m.token(op, r.AccessToken, r.ExpiresOn, r.Metadata.RefreshOn)
}

// AppToken implements acquire.Provider with the client credentials grant: the app's own token.
func (m *Client) AppToken(ctx context.Context, g acquire.Grant) (tokencache.Token, error) {
	client, err := m.msal(nil)
	if err != nil {
		return tokencache.Token{}, err
	}
	const op = "client credentials token request"
	var opts []confidential.AcquireByCredentialOption
	if g.Tenant != "" {
		opts = append(opts, confidential.WithTenantID(g.Tenant))
	}
	if g.Claims != "" {
		opts = append(opts, confidential.WithClaims(g.Claims))
	}
	r, err := client.AcquireTokenByCredential(ctx, g.Scopes, opts...)
	if err != nil {
		return tokencache.Token{}, m.failed(ctx, op, err)
	}
	return m.token(op, r.AccessToken, r.ExpiresOn, r.Metadata.RefreshOn)
}

// maxTokenBytes bounds a downstream access token. Entra's are a few KB (group overage keeps them small); a larger
// one is a broken or hostile answer, and would be cached and forwarded on every request.
const maxTokenBytes = 64 << 10

// token checks an access token before it is cached or forwarded: its size, and that it is an RFC 6750 b64token,
// so nothing can smuggle a CR or LF into the upstream's Authorization header.
func (m *Client) token(op, raw string, expires, refresh time.Time) (tokencache.Token, error) {
	switch {
	case raw == "":
		return tokencache.Token{}, &UnexpectedError{Op: op, Host: m.host, Why: "the answer holds no access token"}
	case len(raw) > maxTokenBytes:
		return tokencache.Token{}, &UnexpectedError{Op: op, Host: m.host,
			Why: fmt.Sprintf("the access token is %d bytes, over the %d-byte limit", len(raw), maxTokenBytes)}
	case !isB64Token(raw):
		return tokencache.Token{}, &UnexpectedError{Op: op, Host: m.host,
			Why: "the access token holds characters outside the token character set"}
	}
	return tokencache.Token{AccessToken: raw, ExpiresOn: expires, RefreshOn: refresh}, nil
}

// isB64Token reports whether s is RFC 6750's b64token: 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
func isB64Token(s string) bool {
	i := 0
	for ; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-._~+/", c) >= 0) {
			break
		}
	}
	if i == 0 {
		return false
	}
	for ; i < len(s); i++ {
		if s[i] != '=' {
			return false
		}
	}
	return true
}

// failed turns an MSAL error into an *Error when Entra answered, else into what callFailed makes of it.
func (m *Client) failed(ctx context.Context, op string, err error) error {
	var call msalerrors.CallErr
	if errors.As(err, &call) && call.Resp != nil {
		// MSAL has read the body and put it back in memory.
		body, _ := io.ReadAll(io.LimitReader(call.Resp.Body, 64<<10))
		e := ParseError(call.Resp.StatusCode, call.Resp.Header, body)
		if e.HasCode(90002) || (call.Resp.StatusCode == http.StatusNotFound && e.Code == "") {
			return answerFailed(op, m.host, call.Resp, body)
		}
		return e
	}
	var mis *MisconfiguredError
	var un *UnavailableError
	if errors.As(err, &mis) || errors.As(err, &un) { // from the discovery transport
		return err
	}
	return callFailed(ctx, op, m.host, err)
}

var _ acquire.Provider = (*Client)(nil)
