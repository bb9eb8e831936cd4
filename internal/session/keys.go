package session

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/tokeninjector/caddy-token-injector/internal/seal"
)

// KeySize is the length of a cookie key: AES-256.
const KeySize = seal.KeySize

// ParseKeys decodes base64 keys (standard or URL alphabet, padded or not), as written in configuration.
func ParseKeys(b64 []string) ([][]byte, error) {
	keys, err := seal.ParseKeys(b64)
	if err != nil {
		return nil, fmt.Errorf("cookie_secret: %w", err)
	}
	return keys, nil
}

func checkKeys(keys [][]byte) error {
	if err := seal.CheckKeys(keys); err != nil {
		return fmt.Errorf("cookie_secret: %w", err)
	}
	return nil
}

// sealVersion is the seal package's format version, bound into the additional data as before.
const sealVersion = 1

// maxSealed bounds what Open decodes: cookies are at most ~4 KB, so anything longer is not ours.
const maxSealed = 8192

// ErrUnsealable is returned by Open for every value it cannot open: malformed, tampered, sealed with an unknown
// key or for another purpose. The causes are deliberately not told apart.
var ErrUnsealable = errors.New("session: the value cannot be opened")

// Seal encrypts and authenticates plaintext with Keys[0] (AES-256-GCM, package seal) and returns it as unpadded
// base64url. The purpose is authenticated as additional data, so a value sealed for one purpose (a session
// cookie) cannot be opened as another (a pre-login cookie).
func (m *Manager) Seal(plaintext []byte, purpose string) (string, error) {
	return base64.RawURLEncoding.EncodeToString(m.keys.Seal(plaintext, additionalData(purpose))), nil
}

// Open reverses Seal with any configured key. Every failure is ErrUnsealable.
func (m *Manager) Open(v, purpose string) ([]byte, error) { return m.open(v, additionalData(purpose)) }

// open is Open with the additional data of a purpose, which the session cookie's path builds once.
func (m *Manager) open(v string, ad []byte) ([]byte, error) {
	if len(v) == 0 || len(v) > maxSealed {
		return nil, ErrUnsealable
	}
	raw, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil {
		return nil, ErrUnsealable
	}
	pt, _, err := m.keys.Open(raw, ad)
	if err != nil {
		return nil, ErrUnsealable
	}
	return pt, nil
}

func additionalData(purpose string) []byte {
	return append([]byte{sealVersion}, "token_injector:"+purpose...)
}

// randomIDInto fills b with random bytes and returns them as unpadded base64url.
func randomIDInto(b []byte) string {
	_, _ = rand.Read(b) // crypto/rand.Read never fails (it crashes the program instead) since Go 1.24
	return base64.RawURLEncoding.EncodeToString(b)
}
