package entra

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"

	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/cache"
	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/confidential"
	msalerrors "github.com/AzureAD/microsoft-authentication-library-for-go/apps/errors"

	"github.com/tokeninjector/caddy-token-injector/internal/acquire"
	"github.com/tokeninjector/caddy-token-injector/internal/identity"
	"github.com/tokeninjector/caddy-token-injector/internal/tokencache"
)

// AuthCodeURL builds the authorize URL. MSAL's confidential AuthCodeURL has no state, nonce or PKCE options, so
// those are added to the URL it returns.
func (m *Client) AuthCodeURL(ctx context.Context, p acquire.AuthCodeParams) (string, error) {
	client, err := m.msal(nil)
	if err != nil {
		return "", err
	}
	var opts []confidential.AuthCodeURLOption
	if p.LoginHint != "" {
		opts = append(opts, confidential.WithLoginHint(p.LoginHint))
	}
	if p.Claims != "" {
		opts = append(opts, confidential.WithClaims(p.Claims))
	}
	raw, err := client.AuthCodeURL(ctx, m.clientID, p.RedirectURI, p.Scopes, opts...)
	if err != nil {
		return "", m.failed(ctx, "building the authorize URL", err)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", err
	}
	q := u.Query()
	q.Set("state", p.State)
	q.Set("nonce", p.Nonce)
	q.Set("code_challenge", p.CodeChallenge)
	q.Set("code_challenge_method", "S256")
	q.Set("response_mode", "query")
	if p.Prompt != "" {
		q.Set("prompt", p.Prompt)
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// RedeemCode redeems the code with the PKCE verifier (MSAL's WithChallenge takes the verifier), checks that the
// id_token answers this sign-in's nonce and is for this app, and captures MSAL's cache of the new account.
func (m *Client) RedeemCode(ctx context.Context, p acquire.RedeemParams) (acquire.SignedIn, error) {
	store := &accountStore{}
	client, err := m.msal(store)
	if err != nil {
		return acquire.SignedIn{}, err
	}
	// MSAL adds the OpenID scopes itself, and counts any it is given as declined when Entra doesn't echo them.
	r, err := client.AcquireTokenByAuthCode(ctx, p.Code, p.RedirectURI, identity.WithoutSignInScopes(p.Scopes), confidential.WithChallenge(p.CodeVerifier))
	if err != nil {
		return acquire.SignedIn{}, m.failed(ctx, "authorization code redemption", err)
	}
	claims, err := unverifiedClaims(r.IDToken.RawToken)
	switch {
	case err != nil:
		return acquire.SignedIn{}, err
	case claims.Nonce == "" || claims.Nonce != p.Nonce:
		return acquire.SignedIn{}, errors.New("the id_token does not carry this sign-in's nonce")
	case claims.Audience != m.clientID:
		return acquire.SignedIn{}, errors.New("the id_token is not for this app")
	}
	tok, err := m.token("authorization code redemption", r.AccessToken, r.ExpiresOn, r.Metadata.RefreshOn)
	if err != nil {
		return acquire.SignedIn{}, err
	}
	username := r.IDToken.PreferredUsername
	if username == "" {
		username = r.IDToken.UPN
	}
	return acquire.SignedIn{
		User:          identity.User{ObjectID: r.IDToken.Oid, TenantID: r.IDToken.TenantID, Username: username, Name: r.IDToken.Name},
		Token:         tok,
		GrantedScopes: r.GrantedScopes,
		Account:       tokencache.Account{MSAL: store.exported(), Scopes: r.GrantedScopes},
	}, nil
}

// Refresh loads the account's MSAL cache into a fresh client and asks MSAL for a token silently: MSAL redeems the
// refresh token (Entra may rotate it) when it has no valid access token for scopes.
//
// MSAL Go's confidential AcquireTokenSilent takes no claims, so a claims challenge (g.Claims) is met by redeeming
// the refresh token anew: the account's cache holds no access token (withoutAccessTokens), and Entra issues the
// new token after the event that raised the challenge. Should Entra need the user, its error carries the claims.
func (m *Client) Refresh(ctx context.Context, account tokencache.Account, user string, g acquire.Grant) (tokencache.Token, tokencache.Account, error) {
	store := &accountStore{in: account.MSAL}
	client, err := m.msal(store)
	if err != nil {
		return tokencache.Token{}, account, err
	}
	a, err := client.Account(ctx, user)
	if err != nil {
		return tokencache.Token{}, account, m.failed(ctx, "reading the signed-in account", err)
	}
	if a.HomeAccountID != user {
		// MSAL holds no record of this account any more.
		return tokencache.Token{}, account, acquire.ErrLoginRequired
	}
	opts := []confidential.AcquireSilentOption{confidential.WithSilentAccount(a)}
	if g.Tenant != "" {
		opts = append(opts, confidential.WithTenantID(g.Tenant))
	}
	r, err := client.AcquireTokenSilent(ctx, g.Scopes, opts...)
	if err != nil {
		var call msalerrors.CallErr
		if !errors.As(err, &call) && strings.Contains(err.Error(), "no token found") {
			// MSAL has no refresh token for this account: the sign-in must be repeated.
			return tokencache.Token{}, account, acquire.ErrLoginRequired
		}
		return tokencache.Token{}, account, m.failed(ctx, "refresh token redemption", err)
	}
	if out := store.exported(); out != nil {
		account.MSAL = out
	}
	tok, err := m.token("refresh token redemption", r.AccessToken, r.ExpiresOn, r.Metadata.RefreshOn)
	return tok, account, err
}

// EndSessionURL is Entra's v2 logout endpoint of the tenant.
func (m *Client) EndSessionURL(postLogoutRedirectURI string) string {
	u := m.authority + "/oauth2/v2.0/logout"
	if postLogoutRedirectURI != "" {
		u += "?post_logout_redirect_uri=" + url.QueryEscape(postLogoutRedirectURI)
	}
	return u
}

// accountStore is the MSAL cache of one call: it loads one account's serialized cache and keeps what MSAL
// exports after writing tokens.
type accountStore struct {
	in  []byte
	mu  sync.Mutex
	out []byte
}

func (s *accountStore) Replace(_ context.Context, c cache.Unmarshaler, _ cache.ReplaceHints) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	data := s.in
	if s.out != nil {
		data = s.out
	}
	if len(data) == 0 {
		return nil
	}
	return c.Unmarshal(data)
}

func (s *accountStore) Export(_ context.Context, c cache.Marshaler, _ cache.ExportHints) error {
	b, err := c.Marshal()
	if err != nil {
		return err
	}
	if b, err = withoutAccessTokens(b); err != nil {
		return err
	}
	s.mu.Lock()
	s.out = b
	s.mu.Unlock()
	return nil
}

func (s *accountStore) exported() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.out
}

// withoutAccessTokens drops the access tokens from MSAL's serialized cache (the shared MSAL cache schema keeps them
// under "AccessToken"). The proxy's token cache owns access tokens and decides when one is too close to expiry;
// without this MSAL would hand back a token the proxy has just judged unusable instead of using the refresh token.
// It also keeps the stored account small.
func withoutAccessTokens(blob []byte) ([]byte, error) {
	var sections map[string]json.RawMessage
	if err := json.Unmarshal(blob, &sections); err != nil {
		return nil, fmt.Errorf("msal cache: %w", err)
	}
	if _, ok := sections["AccessToken"]; !ok {
		return blob, nil
	}
	delete(sections, "AccessToken")
	return json.Marshal(sections)
}

type idTokenClaims struct {
	Nonce    string `json:"nonce"`
	Audience string `json:"aud"`
}

// unverifiedClaims reads an id_token that came straight from the token endpoint over TLS, authenticated by the
// client secret; OpenID Connect Core 3.1.3.7 lets the client skip its signature check in that case.
func unverifiedClaims(idToken string) (idTokenClaims, error) {
	var c idTokenClaims
	parts := strings.Split(idToken, ".")
	if len(parts) != 3 {
		return c, errors.New("the sign-in returned no id_token")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return c, errors.New("the id_token is malformed")
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		return c, errors.New("the id_token is malformed")
	}
	return c, nil
}
