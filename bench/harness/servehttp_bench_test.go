package harness_test

import (
	"fmt"
	"testing"

	"github.com/tokeninjector/caddy-token-injector/bench/harness"
	"github.com/tokeninjector/caddy-token-injector/internal/dev/entraemu"
)

// BenchmarkServeHTTP measures token_injector's ServeHTTP on the cache-hit path, caller-token validation included,
// as provisioned by a real Caddy config, called directly: no network, no server, no proxy.
//
//	go test -run '^$' -bench ServeHTTP -benchmem ./bench/harness
//	go test -run '^$' -bench 'ServeHTTP/users=1000$' -cpuprofile cpu.out -memprofile mem.out ./bench/harness
//
// "baseline" is the per-request setup the benchmark does that Caddy's server also does (a Replacer in the
// context, the request read in); subtract it from the others to get the handler's own cost ("session/baseline"
// from the session path's).
//
// "session/users=1000" is the cookie-session path (a route with sign_in on the same registration) for the same
// 1,000 users, each with a session made in the store as the sign-in callback makes it: each request carries only
// the session cookie, which the handler opens (once; it is remembered), checks with the store, and strips.
//
//	go test -run '^$' -bench 'ServeHTTP/session' -benchmem ./bench/harness
func BenchmarkServeHTTP(b *testing.B) {
	const maxUsers = 1000
	env, users, oids, tokens := startWithTokens(b, maxUsers)
	if _, err := env.Warm(harness.PathCheck, tokens, oids); err != nil {
		b.Fatal(err)
	}
	hot := checked(b)(harness.NewHotPath(harness.CaptureInj, tokens, oids))

	b.Run("baseline", baseline(hot))
	for _, n := range []int{1, maxUsers} {
		some, err := harness.NewHotPath(harness.CaptureInj, tokens[:n], oids[:n])
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("users=%d", n), serve(some))
	}
	b.Run(fmt.Sprintf("users=%d/parallel", maxUsers), func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			c := hot.NewClient()
			for pb.Next() {
				if err := c.Serve(); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	// The same users, signed in: sessions made in the store as the sign-in callback makes them, so that both
	// paths serve the same users' cached tokens (item 6 of the suite signs users in through the real flow).
	cookies, err := env.CreateSessions(harness.CaptureSess, users)
	if err != nil {
		b.Fatal(err)
	}
	sess := checked(b)(env.NewSessionHotPath(harness.CaptureSess, cookies, oids))
	// Its own baseline: a session request's setup reads in a cookie, not a 1.6 KB token.
	b.Run("session/baseline", baseline(sess))
	b.Run(fmt.Sprintf("session/users=%d", maxUsers), serve(sess))
}

// startWithTokens starts an Env with n users in tenant A and mints each one's caller token.
func startWithTokens(b *testing.B, n int) (*harness.Env, []entraemu.User, []string, []string) {
	env, err := harness.StartEnv(harness.EnvOptions{UsersA: n})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(env.Close)
	users, oids := harness.Users(0, n)
	tokens, err := env.A.Mint(users)
	if err != nil {
		b.Fatal(err)
	}
	return env, users, oids, tokens
}

// checked returns a hot path once its first request was served as its user's own.
func checked(b *testing.B) func(*harness.HotPath, error) *harness.HotPath {
	return func(p *harness.HotPath, err error) *harness.HotPath {
		if err == nil {
			err = p.NewClient().Check(0)
		}
		if err != nil {
			b.Fatal(err)
		}
		return p
	}
}

// baseline measures p's per-request setup alone, which ServeHTTP's figure includes and the handler's leaves out.
func baseline(p *harness.HotPath) func(*testing.B) {
	return func(b *testing.B) {
		c := p.NewClient()
		b.ReportAllocs()
		for b.Loop() {
			_ = c.Baseline()
		}
	}
}

// serve measures ServeHTTP on p's requests, setup included.
func serve(p *harness.HotPath) func(*testing.B) {
	return func(b *testing.B) {
		c := p.NewClient()
		b.ReportAllocs()
		for b.Loop() {
			if err := c.Serve(); err != nil {
				b.Fatal(err)
			}
		}
	}
}
