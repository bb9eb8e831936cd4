package entraemu

import "net/http"

// What the external tests (package entraemu_test, which may use testenv) check inside the emulator.

// NewOpaque is newOpaque: a random URL-safe string of n bytes.
var NewOpaque = newOpaque

// UserByKey looks a user up as the token endpoint does.
func (e *Emulator) UserByKey(k string) *User { return e.userByKey(k) }

// AppByID looks an app up by client id.
func (e *Emulator) AppByID(id string) *App { return e.appByID(id) }

// IssuerV2 is the v2 issuer for r (nil: the base URL set last).
func (e *Emulator) IssuerV2(r *http.Request) string { return e.issuerV2(r) }

// UserCount is how many users the directory holds.
func (e *Emulator) UserCount() int { return len(e.cfg.Users) }

// SigningKeyID is the current signing key's kid; SigningKeyBits its RSA modulus size.
func (e *Emulator) SigningKeyID() string { return e.key.kid }

// SigningKeyBits is the current signing key's RSA modulus size.
func (e *Emulator) SigningKeyBits() int { return e.key.priv.N.BitLen() }

// ResourceShape describes a registered resource: its token version and scope count (ok false: unknown).
func (e *Emulator) ResourceShape(id string) (version, scopes int, ok bool) {
	ri := e.resourceByID(id)
	if ri == nil {
		return 0, 0, false
	}
	return ri.version, len(ri.scopes), true
}

// GrantConsent records that user consented to scope for clientID, as the authorize page does.
func (e *Emulator) GrantConsent(user, clientID, scope string) error {
	sr, a := e.parseScopes(scope)
	if a != nil {
		return a
	}
	e.grantConsent(e.userByKey(user), e.appByID(clientID), sr)
	return nil
}

// ForgetBaseURL undoes SetBaseURL: the base URL comes from each request again.
func (e *Emulator) ForgetBaseURL() { e.base.Store(nil) }
