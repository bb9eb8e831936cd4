// Command bench is token_injector's benchmark suite: one in-process Caddy with a plain and a token_injector route
// to the same trivial upstream, the Entra emulator over HTTPS, and a Go load generator, all in this process. It
// prints a Markdown table of every measurement next to its target (see BENCHMARKS.md).
//
//	go run ./bench            # the full suite, about three minutes on 2 cores
//	go run ./bench -smoke     # a tiny configuration that checks the suite end to end (what CI runs via go test)
//
// It exits 1 when something that is not a timing is wrong (a response that is not 200, more than one
// identity-provider call per user, a cache over its cap); timings are reported, never judged by the exit code.
package main

import (
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"
)

// Config sizes the suite.
type Config struct {
	Smoke bool

	Users int           // steady state: distinct users, all cached (20..1000)
	Conns int           // steady state: connections of the loaded level (the other level is 1 connection)
	Pairs int           // steady state: measured (plain, injector) pairs of rounds per level
	Round time.Duration // steady state: one round

	MemSizes   []int // cache fills without eviction
	CapEntries int   // the cap filled past by half

	HerdOne   int           // concurrent first requests of one user
	HerdUsers int           // distinct users arriving at once
	HerdDelay time.Duration // emulator latency during the herds

	ExpiryUsers, ExpiryConns int
	ExpiryFor                time.Duration // length of the run
	RefreshIn                time.Duration // Entra's refresh_in on tenant B's tokens (whole seconds)
	ExpiryDelay              time.Duration // tenant B's latency: a request waiting on a renewal would take this long

	// SessionUsers are signed in for the session path (item 6); 0 means as many as Users.
	SessionUsers int
	// SignInPages is how many of those sign-ins fetch the emulator's picker page, which lists every user of the
	// tenant; the others post its form directly.
	SignInPages int

	// Scale (item 7): active users at each size (ascending; the largest is minted, cached and signed in), the
	// passes of one round per kind of request, and the entries added to the token cache under load.
	ScaleSizes   []int
	ScalePasses  int
	ScaleRound   time.Duration
	ScaleMillion int
	// ScaleOBOEvery: one scale user in this many gets a downstream token by On-Behalf-Of (checked to be their
	// own); the others get a copy (Env.SeedTokens), so that the setup is not 50,000 RSA signatures more.
	ScaleOBOEvery int
	// ScaleRepeat repeats the measurement after the one setup, to show its spread (default 1).
	ScaleRepeat int
	// ScaleNull adds, at each size, the bearer control paired with itself: what the pairs read when the two
	// routes are one, the harness's own bias and spread (off by default; it adds half again to item 7's time).
	ScaleNull bool

	Profile  string // directory for CPU and allocation profiles of the loaded steady state (items 1 and 6)
	CaddyLog string // Caddy's log file; "" discards it
	// Only, when not empty, runs just these scenarios (steady, hotpath, session, herd, expiry, redis, scale, memory), e.g. to
	// measure a patch before and after.
	Only map[string]bool
}

// runs reports whether scenario is selected.
func (c Config) runs(scenario string) bool { return len(c.Only) == 0 || c.Only[scenario] }

func (c Config) sessionUsers() int {
	if c.SessionUsers > 0 {
		return c.SessionUsers
	}
	return c.Users
}

// Tenant A's numbered users: the steady state's, the one-user herd's, the many-user herd's, then the sessions'.
func (c Config) herdFrom() int    { return c.Users + 1 }
func (c Config) sessionFrom() int { return c.herdFrom() + c.HerdUsers }
func (c Config) scaleFrom() int   { return c.sessionFrom() + c.sessionUsers() }
func (c Config) usersA() int {
	if !c.runs("scale") || len(c.ScaleSizes) == 0 {
		return c.scaleFrom()
	}
	return c.scaleFrom() + slices.Max(c.ScaleSizes)
}

func fullConfig() Config {
	return Config{Users: 1000, Conns: 32, Pairs: 6, Round: 1250 * time.Millisecond,
		MemSizes: []int{10_000, 100_000, 1_000_000}, CapEntries: 100_000,
		HerdOne: 1000, HerdUsers: 5000, HerdDelay: 50 * time.Millisecond,
		ExpiryUsers: 100, ExpiryConns: 8, ExpiryFor: 20 * time.Second, RefreshIn: 5 * time.Second,
		ExpiryDelay: 500 * time.Millisecond, SignInPages: 10,
		ScaleSizes: []int{1000, 10_000, 50_000}, ScalePasses: 4, ScaleRound: 500 * time.Millisecond, ScaleMillion: 1_000_000,
		ScaleOBOEvery: 25}
}

// smokeConfig exercises every scenario in a few seconds (under -race, too).
func smokeConfig() Config {
	return Config{Smoke: true, Users: 20, Conns: 4, Pairs: 1, Round: 200 * time.Millisecond,
		MemSizes: []int{2000}, CapEntries: 1000,
		HerdOne: 50, HerdUsers: 100, HerdDelay: 50 * time.Millisecond,
		ExpiryUsers: 5, ExpiryConns: 2, ExpiryFor: 2500 * time.Millisecond, RefreshIn: time.Second,
		ExpiryDelay: 500 * time.Millisecond, SignInPages: 20,
		ScaleSizes: []int{20, 50, 100}, ScalePasses: 1, ScaleRound: 100 * time.Millisecond, ScaleMillion: 2000,
		ScaleOBOEvery: 5}
}

func (c Config) String() string {
	var mem []string
	for _, n := range c.MemSizes {
		mem = append(mem, count(n))
	}
	var sizes []string
	for _, n := range c.ScaleSizes {
		sizes = append(sizes, count(n))
	}
	return fmt.Sprintf("steady %d users, 1 and %d connections, %d pairs of %s rounds; cache fills %s, cap %s; "+
		"herds %d and %d users, IdP +%s; expiry %d users, refresh_in %s, %s; sessions %d users, as steady; "+
		"scale %s users, %d passes of %s rounds, %s more cached entries",
		c.Users, c.Conns, c.Pairs, c.Round, strings.Join(mem, "/"), count(c.CapEntries), c.HerdOne, c.HerdUsers,
		c.HerdDelay, c.ExpiryUsers, c.RefreshIn, c.ExpiryFor, c.sessionUsers(), strings.Join(sizes, "/"),
		c.ScalePasses, c.ScaleRound, count(c.ScaleMillion))
}

func main() {
	cfg := fullConfig()
	smoke := flag.Bool("smoke", false, "run a tiny configuration (seconds) that checks the suite end to end")
	users := flag.Int("users", 0, "steady-state users, 20 to 1000 (default 1000)")
	conns := flag.Int("conns", 0, "connections of the loaded steady-state level (default 32)")
	pairs := flag.Int("pairs", 0, "measured pairs of rounds per steady-state level (default 6)")
	round := flag.Duration("round", 0, "length of a steady-state round (default 1.25s)")
	sessionUsers := flag.Int("session-users", 0, "users signed in for the session path (default: as -users)")
	scaleRepeat := flag.Int("scale-repeat", 1, "repeat the scale item's measurement this many times after its setup, to show its spread")
	scalePasses := flag.Int("scale-passes", 0, "measured passes of the scale item (default 4); more and longer rounds give profiles finer grain")
	scaleRound := flag.Duration("scale-round", 0, "length of a scale round (default 500ms)")
	flag.BoolVar(&cfg.ScaleNull, "scale-null", false, "also pair the scale item's bearer control with itself at each size: the harness's own bias and spread")
	flag.StringVar(&cfg.Profile, "profile", "", "write CPU and allocation profiles of the loaded steady state (and session-*.pprof of the session path's) here")
	flag.StringVar(&cfg.CaddyLog, "caddy-log", "", "write Caddy's log to this file")
	only := flag.String("only", "", "comma-separated scenarios to run: steady, hotpath, session, herd, expiry, redis, scale, memory (default all)")
	flag.Parse()
	if *smoke {
		p, l := cfg.Profile, cfg.CaddyLog
		cfg = smokeConfig()
		cfg.Profile, cfg.CaddyLog = p, l
	}
	for _, o := range []struct {
		dst *int
		v   int
	}{{&cfg.Users, *users}, {&cfg.Conns, *conns}, {&cfg.Pairs, *pairs}, {&cfg.SessionUsers, *sessionUsers},
		{&cfg.ScalePasses, *scalePasses}} {
		if o.v > 0 {
			*o.dst = o.v
		}
	}
	cfg.ScaleRepeat = *scaleRepeat
	if *round > 0 {
		cfg.Round = *round
	}
	if *scaleRound > 0 {
		cfg.ScaleRound = *scaleRound
	}
	if *only != "" {
		cfg.Only = map[string]bool{}
		for _, s := range strings.Split(*only, ",") {
			cfg.Only[strings.TrimSpace(s)] = true
		}
	}
	if cfg.Users < 1 || cfg.Users > 5000 {
		fmt.Fprintln(os.Stderr, "bench: -users must be between 1 and 5000")
		os.Exit(2)
	}

	rep, err := run(cfg, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	printTable(os.Stdout, rep.Machine, cfg, rep.Rows, rep.Took)
	if v := rep.Violations(cfg); len(v) > 0 {
		fmt.Fprintln(os.Stderr, "bench: FAILED (not timing):\n  "+strings.Join(v, "\n  "))
		os.Exit(1)
	}
}
