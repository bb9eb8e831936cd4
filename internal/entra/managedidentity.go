package entra

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/confidential"
	msalerrors "github.com/AzureAD/microsoft-authentication-library-for-go/apps/errors"
	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/managedidentity"
	"golang.org/x/sync/singleflight"
)

// miRenewBefore is how long before the managed identity's token expires that a new one is fetched. An assertion
// only has to be valid when Entra reads it; MSAL's own cache also stops returning a token 5 minutes before expiry.
const miRenewBefore = 5 * time.Minute

// managedIdentityAssertion gets the host's managed identity token for the token exchange audience and hands it
// to MSAL as the app's client assertion. One token serves every user's requests until shortly before it
// expires; concurrent requests that find none wait for one fetch.
type managedIdentityAssertion struct {
	clientID, audience string
	client             managedidentity.Client
	http               *swappableClient
	flights            singleflight.Group

	mu      sync.Mutex
	token   string
	expires time.Time
}

// credentialDeps is what building a credential needs from the registration.
type credentialDeps struct {
	http *http.Client
}

func newManagedIdentityAssertion(clientID, audience string, deps credentialDeps) (*managedIdentityAssertion, error) {
	id := managedidentity.SystemAssigned()
	if clientID != "" {
		id = managedidentity.UserAssignedClientID(clientID)
	}
	hc := &swappableClient{}
	hc.set(deps.http)
	client, err := managedidentity.New(id, managedidentity.WithHTTPClient(hc))
	if err != nil {
		return nil, fmt.Errorf("managed_identity: %w", err)
	}
	return &managedIdentityAssertion{clientID: clientID, audience: audience, client: client, http: hc}, nil
}

// same reports whether m is the identity and audience asked for, so a reload can keep it and its token.
func (m *managedIdentityAssertion) same(clientID, audience string) bool {
	return m.clientID == clientID && m.audience == audience
}

// assertion is MSAL's assertion callback.
func (m *managedIdentityAssertion) assertion(ctx context.Context, _ confidential.AssertionRequestOptions) (string, error) {
	m.mu.Lock()
	tok, exp := m.token, m.expires
	m.mu.Unlock()
	if tok != "" && time.Until(exp) > miRenewBefore {
		return tok, nil
	}
	ch := m.flights.DoChan("", func() (any, error) { return m.fetch(context.WithoutCancel(ctx)) })
	select {
	case r := <-ch:
		if r.Err != nil {
			return "", r.Err
		}
		return r.Val.(string), nil
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// miFetchTimeout bounds one fetch, which MSAL retries on 5xx: it outlives a single caller's deadline.
const miFetchTimeout = 30 * time.Second

func (m *managedIdentityAssertion) fetch(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, miFetchTimeout)
	defer cancel()
	r, err := m.client.AcquireToken(ctx, m.audience)
	if err != nil {
		return "", m.failed(ctx, err)
	}
	if r.AccessToken == "" || !isB64Token(r.AccessToken) || len(r.AccessToken) > maxTokenBytes {
		return "", &UnexpectedError{Op: "managed identity token request", Host: "managed identity endpoint",
			Why: "the answer holds no usable access token"}
	}
	m.mu.Lock()
	m.token, m.expires = r.AccessToken, r.ExpiresOn
	m.mu.Unlock()
	return r.AccessToken, nil
}

// failed classifies a failure of the managed identity endpoint. Its body is not quoted.
func (m *managedIdentityAssertion) failed(ctx context.Context, err error) error {
	const op = "managed identity token request"
	var call msalerrors.CallErr
	if errors.As(err, &call) && call.Resp != nil {
		host := call.Resp.Request.URL.Host
		status := call.Resp.StatusCode
		if status == http.StatusTooManyRequests || status >= 500 {
			return &UnavailableError{Op: op, Host: host, Err: fmt.Errorf("HTTP %d", status)}
		}
		return &MisconfiguredError{Op: op, Host: host, Err: fmt.Errorf("HTTP %d", status),
			Fix: "the managed identity endpoint refused: check managed_identity's client id and that the identity is assigned to this app or container"}
	}
	return callFailed(ctx, op, "managed identity endpoint", err)
}

// ManagedIdentitySource names where the host's managed identity tokens come from, as MSAL detects it from the
// environment: AppService (IDENTITY_ENDPOINT and IDENTITY_HEADER, also Container Apps), DefaultToIMDS (a VM's
// or a node's 169.254.169.254), AzureArc, CloudShell, ...
func ManagedIdentitySource() string {
	s, err := managedidentity.GetSource()
	if err != nil {
		return "unknown"
	}
	return string(s)
}

// swappableClient lets a reload give a kept managed identity client the new HTTP client (a new trust pool).
type swappableClient struct{ c atomic.Pointer[http.Client] }

func (s *swappableClient) set(c *http.Client)                         { s.c.Store(c) }
func (s *swappableClient) Do(r *http.Request) (*http.Response, error) { return s.c.Load().Do(r) }
func (s *swappableClient) CloseIdleConnections()                      { s.c.Load().CloseIdleConnections() }

// TokenExchangeAudience is the audience of the managed identity token that serves as a federated credential:
// each cloud has its own, told by its sign-in host. Other hosts (a private emulator) get the public cloud's.
func TokenExchangeAudience(authorityHost string) string {
	switch strings.ToLower(hostOf(authorityHost)) {
	case "login.microsoftonline.us":
		return "api://AzureADTokenExchangeUSGov"
	case "login.chinacloudapi.cn", "login.partner.microsoftonline.cn":
		return "api://AzureADTokenExchangeChina"
	}
	return "api://AzureADTokenExchange"
}
