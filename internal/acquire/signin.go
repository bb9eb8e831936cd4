package acquire

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tokeninjector/caddy-token-injector/internal/identity"
	"github.com/tokeninjector/caddy-token-injector/internal/tokencache"
)

// accountLifetime is how long an account's refresh state is kept after its last use: Entra's default for a
// refresh token's inactivity. Sessions usually end long before.
const accountLifetime = 90 * 24 * time.Hour

// AuthCodeParams are the parameters of an authorize URL. The PKCE method is S256.
type AuthCodeParams struct {
	RedirectURI                 string
	Scopes                      []string
	State, Nonce, CodeChallenge string
	Prompt, LoginHint, Claims   string
}

// RedeemParams complete a sign-in.
type RedeemParams struct {
	Code, CodeVerifier, RedirectURI, Nonce string
	Scopes                                 []string
}

// SignedIn is the outcome of a redeemed code.
type SignedIn struct {
	// User is who signed in, from the id_token of the code redemption.
	User identity.User
	// Token is the access token issued with the code; GrantedScopes are its scopes.
	Token         tokencache.Token
	GrantedScopes []string
	Account       tokencache.Account
}

// AuthCodeURL returns the authorize URL for an interactive sign-in.
func (e *Engine) AuthCodeURL(ctx context.Context, p AuthCodeParams) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, e.cfg().CallTimeout)
	defer cancel()
	return e.provider.AuthCodeURL(ctx, p)
}

// SignIn redeems an authorization code and keeps the account's refresh state and first access token, so the
// user's next request is answered from the cache.
func (e *Engine) SignIn(ctx context.Context, p RedeemParams) (SignedIn, error) {
	ctx, cancel := context.WithTimeout(ctx, e.cfg().CallTimeout)
	defer cancel()
	e.providerCalls.Add(1)
	s, err := e.provider.RedeemCode(ctx, p)
	if err != nil {
		e.providerErrors.Add(1)
		return SignedIn{}, err
	}
	if s.User.ObjectID == "" || s.User.TenantID == "" {
		return SignedIn{}, errors.New("the id_token names no oid and tid")
	}
	user := s.User.Key()
	s.Account.ExpiresOn = e.cfg().Now().Add(accountLifetime)
	if err := e.cache.SetAccount(ctx, user, s.Account); err != nil {
		return SignedIn{}, err
	}
	if apiScopes := identity.WithoutSignInScopes(p.Scopes); len(apiScopes) > 0 && coversScopes(s.GrantedScopes, apiScopes) {
		t := s.Token
		t.RefreshOn = e.refreshOn(t)
		key := tokencache.Key{User: user, Context: tokencache.SessionContext, Scopes: tokencache.NormalizeScopes(apiScopes)}
		_ = e.cache.Set(ctx, key, t)
	}
	return s, nil
}

// SignOut forgets the user's tokens and refresh state.
func (e *Engine) SignOut(ctx context.Context, user string) error {
	return e.cache.DeleteUser(ctx, user)
}

// EndSessionURL is the identity provider's sign-out page.
func (e *Engine) EndSessionURL(postLogoutRedirectURI string) string {
	return e.provider.EndSessionURL(postLogoutRedirectURI)
}

// coversScopes reports whether granted includes every one of want (Entra compares scopes case-insensitively).
func coversScopes(granted, want []string) bool {
	for _, w := range want {
		if !slices.ContainsFunc(granted, func(g string) bool { return strings.EqualFold(g, w) }) {
			return false
		}
	}
	return true
}

// keyedMutex is a mutex per key that honours the caller's context and holds no memory for idle keys.
type keyedMutex struct {
	mu    sync.Mutex
	locks map[string]*keyedLock
}

type keyedLock struct {
	token chan struct{} // holds one value while unlocked
	refs  int
}

// Lock waits until key is free or ctx ends.
func (k *keyedMutex) Lock(ctx context.Context, key string) (unlock func(), err error) {
	k.mu.Lock()
	if k.locks == nil {
		k.locks = map[string]*keyedLock{}
	}
	l := k.locks[key]
	if l == nil {
		l = &keyedLock{token: make(chan struct{}, 1)}
		l.token <- struct{}{}
		k.locks[key] = l
	}
	l.refs++
	k.mu.Unlock()
	release := func() {
		k.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(k.locks, key)
		}
		k.mu.Unlock()
	}
	select {
	case <-l.token:
		return func() { l.token <- struct{}{}; release() }, nil
	case <-ctx.Done():
		release()
		return nil, ctx.Err()
	}
}
