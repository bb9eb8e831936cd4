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

// MSAL speaks the protocol through MSAL Go. The proxy owns the token cache, so MSAL's own in-memory cache is emptied
// before every operation (see emptyCache): it must not grow with every user and every SSO token.
type MSAL struct {
	client confidential.Client
}

// NewMSAL builds the confidential client. It makes no network calls.
func NewMSAL(c MSALConfig) (*MSAL, error) {
	cred, err := confidential.NewCredFromSecret(c.ClientSecret)
	if err != nil {
		return nil, fmt.Errorf("client_secret: %w", err)
	}
	authority := strings.TrimSuffix(c.AuthorityHost, "/") + "/" + url.PathEscape(c.Tenant)
	client, err := confidential.New(authority, c.ClientID, cred,
		confidential.WithHTTPClient(c.HTTPClient),
		// Tenant discovery through the OpenID document works in every cloud and in the emulator; instance
		// discovery would call login.microsoftonline.com, which a sovereign cloud or an offline host can't reach.
		confidential.WithInstanceDiscovery(false),
		confidential.WithCache(emptyCache{}),
	)
	if err != nil {
		return nil, fmt.Errorf("authority %q: %w", authority, err)
	}
	return &MSAL{client: client}, nil
}

// OnBehalfOf implements Provider with the jwt-bearer grant.
func (m *MSAL) OnBehalfOf(ctx context.Context, assertion string, scopes []string, claims string) (tokencache.Token, error) {
	var opts []confidential.AcquireOnBehalfOfOption
	if claims != "" {
		opts = append(opts, confidential.WithClaims(claims))
	}
	r, err := m.client.AcquireTokenOnBehalfOf(ctx, assertion, scopes, opts...)
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

// emptyCache hands MSAL an empty cache before every read and write and keeps nothing it exports, so MSAL's memory
// stays constant; the proxy's own cache, partitioned by validated identity, is the only one.
type emptyCache struct{}

func (emptyCache) Replace(_ context.Context, c cache.Unmarshaler, _ cache.ReplaceHints) error {
	return c.Unmarshal([]byte("{}"))
}

func (emptyCache) Export(context.Context, cache.Marshaler, cache.ExportHints) error { return nil }

var _ Provider = (*MSAL)(nil)
