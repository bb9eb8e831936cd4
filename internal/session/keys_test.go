package session

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"
)

func TestParseKeys(t *testing.T) {
	raw := key(7)
	std := base64.StdEncoding.EncodeToString(raw)
	url := base64.URLEncoding.EncodeToString(raw)
	tests := []struct {
		name    string
		in      []string
		wantErr string
	}{
		{"standard padded", []string{std}, ""},
		{"standard unpadded", []string{strings.TrimRight(std, "=")}, ""},
		{"url padded", []string{url}, ""},
		{"url unpadded", []string{base64.RawURLEncoding.EncodeToString(raw)}, ""},
		{"surrounding whitespace", []string{"  " + std + "\n"}, ""},
		{"two keys", []string{std, base64.StdEncoding.EncodeToString(key(9))}, ""},
		{"none", nil, "cookie_secret: at least one key"},
		{"short second key", []string{std, base64.StdEncoding.EncodeToString(make([]byte, 12))},
			"cookie_secret: key 2 is 12 bytes, want 32 (base64 of 32 random bytes)"},
		{"long key", []string{base64.StdEncoding.EncodeToString(make([]byte, 64))}, "key 1 is 64 bytes, want 32"},
		{"not base64", []string{"not base64!!"}, "cookie_secret: key 1 is not base64"},
		{"all zero", []string{base64.StdEncoding.EncodeToString(make([]byte, 32))}, "key 1 is all zero bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keys, err := ParseKeys(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(keys[0], raw) {
				t.Fatalf("key = %x, want %x", keys[0], raw)
			}
		})
	}
}

func TestSealOpen(t *testing.T) {
	m, _, _ := newTestManager(t, Config{})
	v, err := m.Seal([]byte("hello"), "p")
	if err != nil {
		t.Fatal(err)
	}
	if strings.ContainsAny(v, "+/=") {
		t.Fatalf("sealed value %q is not unpadded base64url", v)
	}
	got, err := m.Open(v, "p")
	if err != nil || string(got) != "hello" {
		t.Fatalf("Open = %q, %v", got, err)
	}
	v2, _ := m.Seal([]byte("hello"), "p")
	if v == v2 {
		t.Fatal("two seals of the same plaintext are equal: the nonce is not random")
	}
}

func TestOpenRefuses(t *testing.T) {
	m, _, _ := newTestManager(t, Config{})
	foreign, _, _ := newTestManager(t, Config{Keys: [][]byte{key(99)}})
	v, _ := m.Seal([]byte("payload"), "session")
	raw, _ := base64.RawURLEncoding.DecodeString(v)
	flip := func(i int) string {
		b := bytes.Clone(raw)
		b[i] ^= 1
		return base64.RawURLEncoding.EncodeToString(b)
	}
	fromForeign, _ := foreign.Seal([]byte("payload"), "session")
	otherPurpose, _ := m.Seal([]byte("payload"), "signin.prelogin")
	tests := map[string]string{
		"empty":             "",
		"garbage":           "%%%not-base64%%%",
		"padded":            v + "==",
		"version flipped":   flip(0),
		"nonce flipped":     flip(3),
		"ciphertext":        flip(len(raw) / 2),
		"tag flipped":       flip(len(raw) - 1),
		"truncated":         v[:len(v)-3],
		"truncated to tiny": v[:10],
		"extended":          v + "AA",
		"foreign key":       fromForeign,
		"other purpose":     otherPurpose,
		"oversized":         strings.Repeat("A", maxSealed+1),
	}
	for name, in := range tests {
		t.Run(name, func(t *testing.T) {
			if pt, err := m.Open(in, "session"); err != ErrUnsealable || pt != nil {
				t.Fatalf("Open = %q, %v; want ErrUnsealable", pt, err)
			}
		})
	}
	// Every single-bit change anywhere is refused.
	for i := range raw {
		if _, err := m.Open(flip(i), "session"); err == nil {
			t.Fatalf("byte %d flipped still opens", i)
		}
	}
}

func TestKeyRotation(t *testing.T) {
	oldM, _, _ := newTestManager(t, Config{Keys: [][]byte{key(1)}})
	rotated, _, _ := newTestManager(t, Config{Keys: [][]byte{key(2), key(1)}})
	newOnly, _, _ := newTestManager(t, Config{Keys: [][]byte{key(2)}})

	old, _ := oldM.Seal([]byte("x"), "p")
	if _, err := rotated.Open(old, "p"); err != nil {
		t.Fatalf("the old key no longer opens after rotation: %v", err)
	}
	fresh, _ := rotated.Seal([]byte("x"), "p")
	if _, err := newOnly.Open(fresh, "p"); err != nil {
		t.Fatalf("rotation does not seal with the new key: %v", err)
	}
	if _, err := oldM.Open(fresh, "p"); err == nil {
		t.Fatal("a value sealed after rotation opens with the old key alone")
	}
	if _, err := newOnly.Open(old, "p"); err == nil {
		t.Fatal("a retired key's value still opens")
	}
}

func TestNewManagerValidates(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"no keys", Config{}, "cookie_secret"},
		{"short key", Config{Keys: [][]byte{key(1), make([]byte, 12)}}, "cookie_secret: key 2 is 12 bytes, want 32"},
		{"bad cookie name", Config{Keys: [][]byte{key(1)}, CookieName: "a b"}, "cookie_name"},
		{"negative idle", Config{Keys: [][]byte{key(1)}, IdleTimeout: -1}, "idle_timeout"},
		{"negative absolute", Config{Keys: [][]byte{key(1)}, AbsoluteTimeout: -1}, "absolute_timeout"},
		{"negative max", Config{Keys: [][]byte{key(1)}, MaxSessions: -1}, "max_sessions"},
		{"bad same site", Config{Keys: [][]byte{key(1)}, SameSite: 9}, "same_site"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewManager(tt.cfg, nil)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
		})
	}
	m, err := NewManager(Config{Keys: [][]byte{key(1)}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if m.cfg.IdleTimeout != DefaultIdleTimeout || m.cfg.AbsoluteTimeout != DefaultAbsoluteTimeout ||
		m.cfg.MaxSessions != DefaultMaxSessions || m.store == nil {
		t.Fatalf("defaults not applied: %+v", m.cfg)
	}
}
