package caddymodule_test

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/tokeninjector/caddy-token-injector/internal/dev/entraemu"
)

// caeRedisConfig is redisConfig for CAE: the registration declares cp1 and shares Redis, and /api/* reaches the
// CAE tests' recording upstream, whose downstream API enforces CAE revocations.
func caeRedisConfig(site, keyEnv, logPath, accessPath string) string {
	registration := fmt.Sprintf(`client_capabilities cp1
		redis {
			url {env.TOKEN_INJECTOR_TEST_REDIS_URL}
			encryption_key {env.%s}
			timeout 1s
		}`, keyEnv)
	return globalBlock(logPath, entraemu.DefaultTenantDomain, registration) + fmt.Sprintf(`
%s {
	log {
		output file %s
	}
	token_injector /api/* api://downstream/Data.Read
	token_injector /graph/* https://graph.microsoft.com/User.Read
	reverse_proxy %s
}
`, site, accessPath, caeEnv.recording.Addr)
}

// A CAE revocation met on replica A serves replica B too: A gets the token for the claims and tells B, which
// forwards that token from Redis, neither challenged by the upstream again nor calling Entra itself.
func TestCAEAnsweredOnOneReplicaServesTheOther(t *testing.T) {
	startCAEUpstreams(t)
	rs := startReplicasWith(t, caeRedisConfig)
	u := freshUser(t)
	sso := ssoToken(t, u.Key, entraemu.MintOptions{})
	for _, site := range []string{rs.a, rs.b} { // each replica now holds the user's token in memory
		if status, body := get(t, site, "/api/me", sso); status != http.StatusOK {
			t.Fatalf("%s before the revocation: %d %s", site, status, body)
		}
	}
	if n := rs.B.held(t).CacheEntries; n != 1 {
		t.Fatalf("B holds %d tokens in memory, want the user's", n)
	}
	env.Emu.RevokeCAE(u.Key, false)
	seen := caeEnv.upstream.count()
	if status, body := get(t, rs.a, "/api/me", sso); status != http.StatusOK {
		t.Fatalf("A after the revocation: %d %s", status, body)
	}
	got := caeEnv.upstream.since(seen)
	if len(got) != 2 || got[0].auth == got[1].auth {
		t.Fatalf("A: %d upstream requests, want the challenged one and its retry with a new token", len(got))
	}
	waitUntil(t, "B to forget the revoked token", func() bool { return rs.B.held(t).CacheEntries == 0 })

	reqs, seen := len(env.Emu.TokenRequests()), caeEnv.upstream.count()
	if status, body := get(t, rs.b, "/api/me", sso); status != http.StatusOK {
		t.Fatalf("B after the revocation: %d %s", status, body)
	}
	onB := caeEnv.upstream.since(seen)
	if len(onB) != 1 || onB[0].auth != got[1].auth {
		t.Fatalf("B: %d upstream requests, want one, with the token A got for the claims", len(onB))
	}
	if n := len(env.Emu.TokenRequests()) - reqs; n != 0 {
		t.Fatalf("B made %d token requests; A's answer to the challenge is in Redis", n)
	}
}
