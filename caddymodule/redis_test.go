package caddymodule

import (
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

func TestRedisBlockErrorsNameTheFieldAndHideSecrets(t *testing.T) {
	const password, key = "hunter2-very-secret", "c2hvcnQta2V5LXRoYXQtaXMtc2VjcmV0"
	tests := []struct {
		name string
		rd   Redis
		want string
	}{
		{"no url", Redis{EncryptionKeys: []string{validKey}}, "url: required"},
		{"bad url", Redis{URL: "http://user:" + password + "@host:6379/0", EncryptionKeys: []string{validKey}}, "url: not a redis"},
		{"short key", Redis{URL: "redis://127.0.0.1:6379/0", EncryptionKeys: []string{key}}, "encryption_key: key 1 is"},
		{"no key", Redis{URL: "redis://127.0.0.1:6379/0"}, "encryption_key: at least one key"},
		{"bad timeout", Redis{URL: "redis://127.0.0.1:6379/0", EncryptionKeys: []string{validKey}, Timeout: "soon"}, "redis: timeout"},
		{"cluster and sentinel", Redis{URL: "redis://127.0.0.1:6379/0", EncryptionKeys: []string{validKey},
			Cluster: []string{"a:1"}, SentinelMaster: "m", Sentinels: []string{"b:2"}}, "set one of them"},
		{"cluster db", Redis{URL: "redis://127.0.0.1:6379/3", EncryptionKeys: []string{validKey}, Cluster: []string{"a:1"}}, "only database 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.rd.resolve()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("resolve = %v, want an error with %q", err, tt.want)
			}
			if strings.Contains(err.Error(), password) || strings.Contains(err.Error(), key) || strings.Contains(err.Error(), validKey) {
				t.Fatalf("the error shows a secret: %v", err)
			}
		})
	}
	if s, err := (&Redis{URL: "redis://127.0.0.1:6379/0", EncryptionKeys: []string{validKey}}).resolve(); err != nil ||
		s.Prefix != "tokeninjector:" || s.Timeout.String() != "250ms" {
		t.Fatalf("defaults: %+v, %v", s, err)
	}
}

// validKey is base64 of 32 bytes that are not all zero.
const validKey = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA="

func TestRedisOnlyInTheGlobalOption(t *testing.T) {
	d := caddyfile.NewTestDispenser(`token_injector https://graph.microsoft.com/User.Read {
		redis {
			url redis://127.0.0.1:6379/0
		}
	}`)
	var h Handler
	if err := h.UnmarshalCaddyfile(d); err == nil || !strings.Contains(err.Error(), "global token_injector option") {
		t.Fatalf("a route-level redis block: %v", err)
	}
	for _, bad := range []string{"redis {\n}", "redis {\n url redis://x:1/0\n}", "redis {\n sentinel onlyname\n}", "redis {\n nope 1\n}"} {
		d := caddyfile.NewTestDispenser("token_injector {\n" + bad + "\n}")
		if _, err := parseGlobalOption(d, nil); err == nil {
			t.Errorf("%q was accepted", bad)
		}
	}
}

func TestInlineRedisSecretsAreWarnedAbout(t *testing.T) {
	rd := &Redis{URL: "redis://u:p@host:6379/0", EncryptionKeys: []string{validKey}, SentinelPassword: "sp"}
	if got := rd.inlineSecrets(); len(got) != 3 {
		t.Fatalf("inlineSecrets = %v, want the url's password, the key and the sentinel password", got)
	}
	rd = &Redis{URL: "{env.REDIS_URL}", EncryptionKeys: []string{"{env.REDIS_KEY}"}, SentinelPassword: "{env.SENTINEL}"}
	if got := rd.inlineSecrets(); len(got) != 0 {
		t.Fatalf("inlineSecrets of placeholders = %v", got)
	}
}
