// Package identity names the user behind a request: proven by a validated caller token or by a sign-in, and the
// key every per-user store is partitioned by.
package identity

import "strings"

// User is a person Entra ID vouched for.
type User struct {
	ObjectID string // oid
	TenantID string // tid
	Username string // preferred_username (v2), upn or unique_name (v1)
	Name     string // name
}

// Key is the user's partition in every cache and store: Entra's home account id, "<oid>.<tid>".
func (u User) Key() string { return Key(u.ObjectID, u.TenantID) }

// Key returns the home account id of the user oid in tenant tid.
func Key(oid, tid string) string { return oid + "." + tid }

// SignInScopes are the OpenID Connect scopes added to every sign-in: an id_token, the user's name, and a
// refresh token.
var SignInScopes = []string{"openid", "profile", "offline_access"}

// IsSignInScope reports whether s asks for the user's identity (an OpenID Connect scope) rather than for an API.
func IsSignInScope(s string) bool {
	switch strings.ToLower(s) {
	case "openid", "profile", "offline_access", "email":
		return true
	}
	return false
}

// WithoutSignInScopes returns scopes without the OpenID Connect ones.
func WithoutSignInScopes(scopes []string) []string {
	var out []string
	for _, s := range scopes {
		if !IsSignInScope(s) {
			out = append(out, s)
		}
	}
	return out
}

// IsGUID reports whether s is 8-4-4-4-12 hexadecimal digits, the form of Entra's object, tenant and client ids.
func IsGUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range s {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !strings.ContainsRune("0123456789abcdefABCDEF", c) {
				return false
			}
		}
	}
	return true
}
