package session

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// KeySize is the length of a cookie key: AES-256.
const KeySize = 32

// ParseKeys decodes base64 keys (standard or URL alphabet, padded or not), as written in configuration.
func ParseKeys(b64 []string) ([][]byte, error) {
	if len(b64) == 0 {
		return nil, errNoKeys
	}
	keys := make([][]byte, 0, len(b64))
	for i, s := range b64 {
		s = strings.TrimSpace(s)
		s = strings.TrimRight(s, "=")
		s = strings.NewReplacer("-", "+", "_", "/").Replace(s)
		k, err := base64.RawStdEncoding.DecodeString(s)
		if err != nil {
			return nil, fmt.Errorf("cookie_secret: key %d is not base64 (want base64 of %d random bytes, e.g. `openssl rand -base64 %d`)", i+1, KeySize, KeySize)
		}
		keys = append(keys, k)
	}
	if err := checkKeys(keys); err != nil {
		return nil, err
	}
	return keys, nil
}

var errNoKeys = fmt.Errorf("cookie_secret: at least one key is required (base64 of %d random bytes, e.g. `openssl rand -base64 %d`)", KeySize, KeySize)

func checkKeys(keys [][]byte) error {
	if len(keys) == 0 {
		return errNoKeys
	}
	for i, k := range keys {
		if len(k) != KeySize {
			return fmt.Errorf("cookie_secret: key %d is %d bytes, want %d (base64 of %d random bytes)", i+1, len(k), KeySize, KeySize)
		}
		if allZero(k) {
			return fmt.Errorf("cookie_secret: key %d is all zero bytes; generate a random one", i+1)
		}
	}
	return nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
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
func (m *Manager) Open(v, purpose string) ([]byte, error) {
	if len(v) == 0 || len(v) > maxSealed {
		return nil, ErrUnsealable
	}
	raw, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil {
		return nil, ErrUnsealable
	}
	pt, _, err := m.keys.Open(raw, additionalData(purpose))
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
