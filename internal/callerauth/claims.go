package callerauth

import (
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/json"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/tokeninjector/caddy-token-injector/internal/identity"
)

// allowedAlgs is the whole list: Entra signs access tokens with RS256, and accepting anything else would open the
// door to alg confusion (HS256 keyed with the public key, "none").
var allowedAlgs = []jose.SignatureAlgorithm{jose.RS256}

type parsedToken struct {
	jws *jose.JSONWebSignature
	kid string
}

// parse checks the token's shape and header without any key; the signature is checked later.
func parse(raw string) (*parsedToken, error) {
	jws, err := jose.ParseSignedCompact(raw, allowedAlgs)
	if err != nil {
		var algErr *jose.ErrUnexpectedSignatureAlgorithm
		if errors.As(err, &algErr) {
			if algErr.Got == "" {
				return nil, invalid("malformed token") // no header or no alg in it
			}
			return nil, invalid("alg %s is not allowed", sanitize(string(algErr.Got)))
		}
		return nil, invalid("malformed token")
	}
	// Compact serialization has exactly one signature; check anyway rather than index blindly.
	if len(jws.Signatures) != 1 {
		return nil, invalid("malformed token")
	}
	kid := jws.Signatures[0].Header.KeyID
	if kid == "" {
		return nil, invalid("token has no kid")
	}
	return &parsedToken{jws: jws, kid: kid}, nil
}

// tokenClaims holds the claims of v1.0 and v2.0 Entra access tokens that we check or report.
type tokenClaims struct {
	Issuer            string           `json:"iss"`
	Audience          jwt.Audience     `json:"aud"` // a string or an array
	Expiry            *jwt.NumericDate `json:"exp"`
	NotBefore         *jwt.NumericDate `json:"nbf"`
	Version           string           `json:"ver"`
	TenantID          string           `json:"tid"`
	ObjectID          string           `json:"oid"`
	Scope             *string          `json:"scp"`
	AuthorizedParty   string           `json:"azp"`   // v2
	AppID             string           `json:"appid"` // v1
	PreferredUsername string           `json:"preferred_username"`
	UPN               string           `json:"upn"`
	UniqueName        string           `json:"unique_name"`
	Name              string           `json:"name"`
	AMR               []string         `json:"amr"`      // how the user authenticated (v1: pwd, mfa, ...)
	ACRS              []string         `json:"acrs"`     // Conditional Access authentication contexts satisfied
	DeviceID          string           `json:"deviceid"` // the device, when the sign-in was from a registered one
}

// authContext is the part of a token's authentication that Conditional Access decides on and a downstream token
// inherits: whether MFA was done, the authentication contexts satisfied, and the device. Two tokens of one user
// with the same context may share downstream tokens; a token without MFA must never ride on one obtained with
// it. Empty for the common case (no MFA claim, no contexts, no device). The order of values does not matter.
func authContext(c *tokenClaims) string {
	var parts []string
	if slices.Contains(c.AMR, "mfa") {
		parts = append(parts, "mfa")
	}
	if len(c.ACRS) > 0 {
		acrs := slices.Clone(c.ACRS)
		slices.Sort(acrs)
		parts = append(parts, "acrs="+strings.Join(slices.Compact(acrs), ","))
	}
	if c.DeviceID != "" {
		parts = append(parts, "device="+c.DeviceID)
	}
	return strings.Join(parts, ";")
}

// checkClaims decodes a payload whose signature has been verified and applies every claim rule, and returns the
// identity and the accepted audience it was issued for. The order puts the errors a client can fix by itself
// (expired: get a new token) first.
func (v *Validator) checkClaims(payload []byte, ks *keySet, now time.Time) (*Identity, string, error) {
	var c tokenClaims
	// go-jose's json is case-sensitive and rejects duplicate members, so no claim can be smuggled past a check.
	if err := json.Unmarshal(payload, &c); err != nil {
		return nil, "", invalid("malformed token claims")
	}
	if c.Version != "" && c.Version != "1.0" && c.Version != "2.0" {
		return nil, "", invalid("token version %s is not supported", safe(c.Version))
	}
	if c.Expiry == nil {
		return nil, "", invalid("token has no exp")
	}
	rules := v.rules.Load()
	exp := c.Expiry.Time()
	if !now.Before(exp.Add(rules.skew)) {
		return nil, "", invalid("token expired")
	}
	if c.NotBefore != nil && now.Add(rules.skew).Before(c.NotBefore.Time()) {
		return nil, "", invalid("token is not valid yet")
	}
	if c.TenantID == "" {
		return nil, "", invalid("token has no tid")
	}
	if !rules.tenants.takes(c.TenantID, ks.tenantID) {
		return nil, "", invalid("token is from tenant %s, not this tenant", safe(c.TenantID))
	}
	if !ks.acceptsIssuer(c.Issuer, c.TenantID) {
		return nil, "", invalid("issuer %s is not this tenant's", safe(c.Issuer))
	}
	aud, err := checkAudience(c.Audience, rules.audiences)
	if err != nil {
		return nil, "", err
	}
	if c.ObjectID == "" {
		return nil, "", invalid("token has no oid")
	}
	var scopes []string
	if c.Scope != nil {
		scopes = strings.Fields(*c.Scope)
	}
	if len(scopes) == 0 {
		// App-only tokens carry roles, not scp; OBO needs a user.
		return nil, "", invalid("not a delegated user token")
	}
	id := &Identity{
		User: identity.User{ObjectID: c.ObjectID, TenantID: c.TenantID,
			Username: firstNonEmpty(c.PreferredUsername, c.UPN, c.UniqueName), Name: c.Name},
		Scopes:      scopes,
		ClientID:    firstNonEmpty(c.AuthorizedParty, c.AppID),
		ExpiresAt:   exp,
		AuthContext: authContext(&c),
	}
	id.UserKey = id.Key()
	if c.Version == "1.0" {
		id.ClientID = firstNonEmpty(c.AppID, c.AuthorizedParty)
	}
	return id, aud, nil
}

// checkAudience returns the accepted value aud matches. It compares case-insensitively, as Entra does: client ids
// are GUIDs and App ID URIs are URIs.
func checkAudience(aud jwt.Audience, accepted []string) (string, error) {
	for _, a := range aud {
		for _, want := range accepted {
			if strings.EqualFold(a, want) {
				return want, nil
			}
		}
	}
	switch len(aud) {
	case 0:
		return "", invalid("token has no audience")
	case 1:
		return "", invalid("audience %s is not accepted", safe(aud[0]))
	default:
		return "", invalid("audiences %s, ... are not accepted", safe(aud[0]))
	}
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// safe quotes a token-supplied value for an error description (see sanitize).
func safe(s string) string { return `"` + sanitize(s) + `"` }

// sanitize shortens a token-supplied value to at most 80 characters of printable ASCII without '"' or '\', so a
// value cannot break out of its quotes or smuggle control characters into a header.
func sanitize(s string) string {
	const maxLen = 80
	var b strings.Builder
	n := 0
	for _, r := range s {
		if n == maxLen {
			b.WriteString("...")
			break
		}
		if r < 0x20 || r > 0x7e || r == '"' || r == '\\' {
			r = '?'
		}
		b.WriteRune(r)
		n++
	}
	return b.String()
}
