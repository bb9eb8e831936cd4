package seal

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"testing"

	"github.com/tokeninjector/caddy-token-injector/internal/dev/testenv"
)

func newKey() []byte {
	k := make([]byte, KeySize)
	_, _ = rand.Read(k)
	return k
}

// TestSealOpens: a value opens with the additional data it was sealed with, under any of the keys (stale under
// one but the first), and nothing else opens: another key, other additional data, one byte changed, a cut.
func TestSealOpens(t *testing.T) {
	oldKey, newer := newKey(), newKey()
	old, err := New([][]byte{oldKey})
	if err != nil {
		t.Fatal(err)
	}
	rotated, err := New([][]byte{newer, oldKey})
	if err != nil {
		t.Fatal(err)
	}
	other, _ := New([][]byte{newKey()})
	pt, ad := []byte("a session id"), []byte("cookie name")
	sealed := old.Seal(pt, ad)
	if got, stale, err := old.Open(sealed, ad); err != nil || stale || !bytes.Equal(got, pt) {
		t.Fatalf("Open with its key: %q, stale %v, %v", got, stale, err)
	}
	if got, stale, err := rotated.Open(sealed, ad); err != nil || !stale || !bytes.Equal(got, pt) {
		t.Fatalf("Open after a rotation: %q, stale %v, %v; want the value, stale", got, stale, err)
	}
	flipped := bytes.Clone(sealed)
	flipped[len(flipped)/2] ^= 1
	for name, tc := range map[string]struct {
		k     *Keys
		v, ad []byte
	}{
		"another key":           {other, sealed, ad},
		"other additional data": {old, sealed, []byte("another name")},
		"one byte changed":      {old, flipped, ad},
		"cut":                   {old, sealed[:len(sealed)-1], ad},
		"only the version":      {old, sealed[:1], ad},
		"empty":                 {old, nil, ad},
	} {
		if _, _, err := tc.k.Open(tc.v, tc.ad); err != ErrUnsealable {
			t.Errorf("%s: %v, want ErrUnsealable", name, err)
		}
	}
	if a, b := old.Seal(pt, ad), old.Seal(pt, ad); bytes.Equal(a, b) {
		t.Error("two seals of one value are equal: the nonce is not drawn each time")
	}
}

// TestValuesSealedBeforeStillOpen: values written before Seal used cipher.NewGCMWithRandomNonce (version, a
// 12-byte nonce drawn by Seal, then GCM's ciphertext and tag), such as the session cookies browsers hold and the
// records in Redis, still open.
func TestValuesSealedBeforeStillOpen(t *testing.T) {
	key := newKey()
	block, _ := aes.NewCipher(key)
	gcm, _ := cipher.NewGCM(block)
	pt, ad := []byte("a refresh token's record"), []byte("tokens:user")
	nonce := make([]byte, gcm.NonceSize())
	_, _ = rand.Read(nonce)
	before := gcm.Seal(append([]byte{version}, nonce...), nonce, pt, ad)
	k, _ := New([][]byte{key})
	if got, _, err := k.Open(before, ad); err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("a value sealed the old way: %q, %v", got, err)
	}
	now := k.Seal(pt, ad)
	if len(now) != len(before) {
		t.Errorf("sealed values are %d bytes, were %d", len(now), len(before))
	}
	if got, err := gcm.Open(nil, now[1:13], now[13:], ad); err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("a value sealed now, read the old way: %q, %v", got, err)
	}
}

// TestSealUnderFIPSOnly: under GODEBUG=fips140=only, which refuses GCM with a caller's nonce, keys are still made
// and values sealed and opened. It runs itself again in a process with that setting (testenv.InFIPSOnlyChild).
func TestSealUnderFIPSOnly(t *testing.T) {
	if !testenv.InFIPSOnlyChild(t) {
		return
	}
	block, _ := aes.NewCipher(newKey())
	if _, err := cipher.NewGCM(block); err == nil {
		t.Fatal("GCM with a caller's nonce was allowed: the test proves nothing")
	}
	k, err := New([][]byte{newKey()})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if got, _, err := k.Open(k.Seal([]byte("x"), nil), nil); err != nil || string(got) != "x" {
		t.Fatalf("round trip: %q, %v", got, err)
	}
}
