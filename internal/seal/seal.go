// Package seal encrypts and authenticates values with AES-256-GCM under a list of keys: the first seals, every one
// opens, so a key is rotated by putting a new one first. Session cookies and the Redis tier both use it; each binds
// its values to their purpose or place with the additional data.
package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"errors"
	"fmt"
)

// KeySize is the length of a key: AES-256.
const KeySize = 32

// version prefixes every sealed value so the format can change without misreading old values.
const version = 1

// ErrUnsealable is returned by Open for every value it cannot open: malformed, tampered, sealed with an unknown
// key or with other additional data. The causes are deliberately not told apart.
var ErrUnsealable = errors.New("the value cannot be opened")

// Keys seals with its first key and opens with any. It is safe for concurrent use.
type Keys struct {
	aeads []cipher.AEAD
}

// New returns Keys over keys, each KeySize bytes; the caller checks them (and names the setting at fault).
func New(keys [][]byte) (*Keys, error) {
	if len(keys) == 0 {
		return nil, errors.New("at least one key is required")
	}
	k := &Keys{}
	for i, key := range keys {
		if len(key) != KeySize {
			return nil, fmt.Errorf("key %d is %d bytes, want %d", i+1, len(key), KeySize)
		}
		block, err := aes.NewCipher(key)
		if err != nil {
			return nil, err
		}
		// The AEAD draws each value's nonce and puts it in front of the ciphertext: the layout Seal has always
		// written, and the form of GCM that FIPS 140-only mode (GODEBUG=fips140=only) allows.
		aead, err := cipher.NewGCMWithRandomNonce(block)
		if err != nil {
			return nil, err
		}
		k.aeads = append(k.aeads, aead)
	}
	return k, nil
}

// Seal returns version, a random nonce and the ciphertext of plaintext with ad authenticated, under the first key.
// Random 96-bit nonces are safe for well under 2^32 values per key, which a key rotation schedule keeps.
func (k *Keys) Seal(plaintext, ad []byte) []byte {
	aead := k.aeads[0]
	out := make([]byte, 1, 1+len(plaintext)+aead.Overhead())
	out[0] = version
	return aead.Seal(out, nil, plaintext, ad)
}

// Open reverses Seal with any key. stale reports that a key other than the first opened it, so the caller may
// seal the value again. Every failure is ErrUnsealable.
func (k *Keys) Open(sealed, ad []byte) (plaintext []byte, stale bool, err error) {
	if len(sealed) < 1 || sealed[0] != version {
		return nil, false, ErrUnsealable
	}
	for i, aead := range k.aeads {
		if len(sealed) < 1+aead.Overhead() {
			return nil, false, ErrUnsealable
		}
		if pt, err := aead.Open(nil, nil, sealed[1:], ad); err == nil {
			return pt, i > 0, nil
		}
	}
	return nil, false, ErrUnsealable
}

// Len is the number of keys.
func (k *Keys) Len() int { return len(k.aeads) }
