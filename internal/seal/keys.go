package seal

import (
	"encoding/base64"
	"fmt"
	"strings"
)

// ParseKeys decodes base64 keys (standard or URL alphabet, padded or not), as written in configuration, and
// checks them (see CheckKeys). Errors number the key at fault and never contain it; the caller names the setting.
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
			return nil, fmt.Errorf("key %d is not base64 (want base64 of %d random bytes, e.g. `openssl rand -base64 %d`)", i+1, KeySize, KeySize)
		}
		keys = append(keys, k)
	}
	if err := CheckKeys(keys); err != nil {
		return nil, err
	}
	return keys, nil
}

var errNoKeys = fmt.Errorf("at least one key is required (base64 of %d random bytes, e.g. `openssl rand -base64 %d`)", KeySize, KeySize)

// CheckKeys refuses an empty list, keys of the wrong size and all-zero keys.
func CheckKeys(keys [][]byte) error {
	if len(keys) == 0 {
		return errNoKeys
	}
	for i, k := range keys {
		if len(k) != KeySize {
			return fmt.Errorf("key %d is %d bytes, want %d (base64 of %d random bytes)", i+1, len(k), KeySize, KeySize)
		}
		if allZero(k) {
			return fmt.Errorf("key %d is all zero bytes; generate a random one", i+1)
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
