package acquire

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/cache"
	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/confidential"
	msalerrors "github.com/AzureAD/microsoft-authentication-library-for-go/apps/errors"

	"github.com/tokeninjector/caddy-token-injector/internal/contract"
	"github.com/tokeninjector/caddy-token-injector/internal/tokencache"
)

// MSALConfig describes the app registration the proxy acts as.
type MSALConfig struct {
	// AuthorityHost is the cloud's sign-in host, e.g. https://login.microsoftonline.com.
	AuthorityHost string
	Tenant        string
	ClientID      string
	ClientSecret  string
	// HTTPClient carries every call to Entra; its transport decides which CAs are trusted.
	HTTPClient *http.Client
}

// MSAL speaks the protocol through MSAL Go. The proxy owns the token cache, so every identity-provider call gets a
// fresh MSAL client that is dropped afterwards: MSAL's in-memory cache is unbounded and shared clients race on
// external caches (../shared/notes/msal-go.md). The discovery document, which each new client would fetch, is
// cached by the transport (discovery.go).
type MSAL struct {
	authority string
	clientID  string
	cred      confidential.Credential
	http      *http.Client
}

// NewMSAL checks the configuration. It makes no network calls.
func NewMSAL(c MSALConfig) (*MSAL, error) {
	cred, err := confidential.NewCredFromSecret(c.ClientSecret)
	if err != nil {
		return nil, fmt.Errorf("client_secret: %w", err)
	}
	m := &MSAL{
		authority: strings.TrimSuffix(c.AuthorityHost, "/") + "/" + url.PathEscape(c.Tenant),
		clientID:  c.ClientID,
		cred:      cred,
		http:      &http.Client{Transport: newDiscoveryCache(c.HTTPClient), Timeout: c.HTTPClient.Timeout},
	}
	if _, err := m.client(nil); err != nil {
		return nil, err
	}
	return m, nil
}

// client returns a new MSAL client; store, when set, is the external cache MSAL loads from and exports to.
func (m *MSAL) client(store cache.ExportReplace) (confidential.Client, error) {
	opts := []confidential.Option{
		confidential.WithHTTPClient(m.http),
		// Tenant discovery through the OpenID document works in every cloud and in the emulator; instance
		// discovery would call login.microsoftonline.com, which a sovereign cloud or an offline host can't reach.
		confidential.WithInstanceDiscovery(false),
	}
	if store != nil {
		opts = append(opts, confidential.WithCache(store))
	}
	c, err := confidential.New(m.authority, m.clientID, m.cred, opts...)
	if err != nil {
		return c, fmt.Errorf("authority %q: %w", m.authority, err)
	}
	return c, nil
}

// OnBehalfOf implements Provider with the jwt-bearer grant.
func (m *MSAL) OnBehalfOf(ctx context.Context, assertion string, scopes []string, claims string) (tokencache.Token, error) {
	var opts []confidential.AcquireOnBehalfOfOption
	if claims != "" {
		opts = append(opts, confidential.WithClaims(claims))
	}
	client, err := m.client(nil)
	if err != nil {
		return tokencache.Token{}, err
	}
	r, err := client.AcquireTokenOnBehalfOf(ctx, assertion, scopes, opts...)
	if err != nil {
		return tokencache.Token{}, FromMSAL(ctx, err)
	}
	return tokencache.Token{AccessToken: r.AccessToken, ExpiresOn: r.ExpiresOn, RefreshOn: r.Metadata.RefreshOn}, nil
}

// FromMSAL turns an MSAL error into the contract's types: an *contract.EntraError when Entra answered, an
// *contract.Unavailable when it could not be reached.
func FromMSAL(ctx context.Context, err error) error {
	var call msalerrors.CallErr
	if errors.As(err, &call) && call.Resp != nil {
		// MSAL has read the body and put it back in memory.
		body, _ := io.ReadAll(io.LimitReader(call.Resp.Body, 64<<10))
		return contract.ParseEntraError(call.Resp.StatusCode, call.Resp.Header, body)
	}
	var netErr net.Error
	var urlErr *url.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil || (errors.As(err, &netErr) && netErr.Timeout()):
		return &contract.Unavailable{Timeout: true, Err: err}
	case errors.As(err, &urlErr), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.As(err, &netErr):
		return &contract.Unavailable{Err: err}
	}
	return err
}

var _ Provider = (*MSAL)(nil)
