package acquire

import (
	"context"
	"testing"

	"github.com/tokeninjector/caddy-token-injector/internal/identity"
	"github.com/tokeninjector/caddy-token-injector/internal/tokencache"
)

// steppedUpSignIn is a sign-in whose redemption gives a token for scope s, as after MFA at Entra.
type steppedUpSignIn struct{ *countingProvider }

func (p steppedUpSignIn) RedeemCode(context.Context, RedeemParams) (SignedIn, error) {
	return SignedIn{User: identity.User{ObjectID: "oid-a", TenantID: "tid"},
		Token:         tokencache.Token{AccessToken: "from-the-sign-in", ExpiresOn: p.clock().Add(p.lifetime)},
		GrantedScopes: []string{"s"}}, nil
}

// The sign-in's token serves the session, and never the same user's bearer token: the sign-in may have taken a
// step-up (MFA, a compliant device) that the bearer token shows no claim of, and shares its partition otherwise.
func TestSessionTokensServeOnlySessions(t *testing.T) {
	e, p, _ := newTestEngine(t)
	e.provider = steppedUpSignIn{p}
	if _, err := e.SignIn(context.Background(), RedeemParams{Scopes: []string{"s", "openid"}}); err != nil {
		t.Fatal(err)
	}
	session := Request{Key: tokencache.Key{User: "oid-a.tid", Context: tokencache.SessionContext, Scopes: "s"}, Scopes: []string{"s"}}
	if tok, err := e.Token(context.Background(), session); err != nil || tok.AccessToken != "from-the-sign-in" || p.calls.Load() != 0 {
		t.Fatalf("the session: %q %v, %d calls; want the sign-in's token and none", tok.AccessToken, err, p.calls.Load())
	}
	bearer := Request{Key: tokencache.Key{User: "oid-a.tid", Scopes: "s"}, Scopes: []string{"s"}, Assertion: "sso-without-mfa"}
	tok, err := e.Token(context.Background(), bearer)
	if err != nil || tok.AccessToken == "from-the-sign-in" || p.calls.Load() != 1 {
		t.Fatalf("a bearer token of the same user: %q %v, %d calls; want its own On-Behalf-Of token", tok.AccessToken, err, p.calls.Load())
	}
}
