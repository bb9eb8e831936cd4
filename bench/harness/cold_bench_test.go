package harness_test

import (
	"testing"

	"github.com/tokeninjector/caddy-token-injector/bench/harness"
)

// BenchmarkColdHit is BenchmarkServeHTTP over 50,000 users taken in a scattered order, so that each request
// finds its user's state (the proven token or the opened cookie, the session, the downstream token) cold in main
// memory, as a server at that scale does between one user's requests. It prices what the warm benchmark cannot:
// the lines and pages a hit touches. Setting it up signs 50,000 tokens and takes about a minute.
//
//	go test -run '^$' -bench ColdHit -benchmem -count 4 ./bench/harness
func BenchmarkColdHit(b *testing.B) {
	const n, stride = 50000, 7919 // stride: a prime, so every user comes once per 50,000 requests
	env, users, oids, tokens := startWithTokens(b, n)
	// One user's token by On-Behalf-Of, copied to the others, as the suite's scale item does.
	if _, err := env.Warm(harness.PathCheck, tokens[:1], oids[:1]); err != nil {
		b.Fatal(err)
	}
	if _, err := env.SeedTokens(harness.CaptureInj, oids[0], tokens); err != nil {
		b.Fatal(err)
	}
	cookies, err := env.CreateSessions(harness.CaptureSess, users)
	if err != nil {
		b.Fatal(err)
	}
	// State is made in the users' order, as they arrived, and read in another.
	warm(b)(harness.NewHotPath(harness.CaptureInj, tokens, oids))
	warm(b)(env.NewSessionHotPath(harness.CaptureSess, cookies, oids))
	scatter := func(s []string) []string {
		out := make([]string, len(s))
		for i := range s {
			out[i] = s[i*stride%len(s)]
		}
		return out
	}
	bearer := checked(b)(harness.NewHotPath(harness.CaptureInj, scatter(tokens), scatter(oids)))
	sess := checked(b)(env.NewSessionHotPath(harness.CaptureSess, scatter(cookies), scatter(oids)))
	b.Run("baseline", baseline(bearer))
	b.Run("users=50000", serve(bearer))
	b.Run("session/baseline", baseline(sess))
	b.Run("session/users=50000", serve(sess))
}

// warm sends every user's request through p once: each caller token proven, each cookie opened.
func warm(b *testing.B) func(*harness.HotPath, error) {
	return func(p *harness.HotPath, err error) {
		if err != nil {
			b.Fatal(err)
		}
		c := p.NewClient()
		for range p.Users() {
			if err := c.Serve(); err != nil {
				b.Fatal(err)
			}
		}
	}
}
