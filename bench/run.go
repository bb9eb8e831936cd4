package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"github.com/tokeninjector/caddy-token-injector/bench/harness"
)

// Report holds every result, for the table and for the smoke test's checks.
type Report struct {
	Machine  machine
	Warm     harness.WarmResult
	Steady   []steadyLevel
	Hot      hotPathResult
	Mem      []memResult
	Cap      memResult
	HerdOne  herdResult
	HerdMany herdResult
	Expiry   expiryResult
	Session  sessionResult
	Scale    scaleResult
	Redis    redisResult
	Roles    map[string]int // goroutines by role label once everything had started
	Rows     []Row
	Took     time.Duration
}

// run runs every scenario in order, logging progress to log. Memory goes last: it grows the heap by gigabytes.
func run(cfg Config, log io.Writer) (*Report, error) {
	start := time.Now()
	rep := &Report{Machine: thisMachine()}
	step := func(format string, args ...any) {
		fmt.Fprintf(log, "[%5.1fs] %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
	}

	// Tenant A: steady-state users, the one-user herd's user, the many-user herd's users, the session users.
	step("starting the emulators, the upstreams and Caddy")
	env, err := harness.StartEnv(harness.EnvOptions{UsersA: cfg.usersA(),
		// The emulator signs every token on the same cores as everything else: a herd queues for seconds.
		TimeoutA: time.Minute,
		UsersB:   cfg.ExpiryUsers, RefreshInB: cfg.RefreshIn, LogFile: cfg.CaddyLog})
	if err != nil {
		return nil, err
	}
	defer env.Close()
	rep.Roles = goroutinesByRole()

	step("minting %d caller tokens and caching each user's downstream token", cfg.Users)
	users, oids := harness.Users(0, cfg.Users)
	tokens, err := env.A.Mint(users)
	if err != nil {
		return nil, err
	}
	if rep.Warm, err = env.Warm(harness.PathCheck, tokens, oids); err != nil {
		return nil, err
	}
	rep.Rows = append(rep.Rows, Row{"1", "warm-up through the token-checking stub: users cached; tokens of another user",
		fmt.Sprintf("%d of %d; %d", rep.Warm.Requests-rep.Warm.Failures, rep.Warm.Requests, rep.Warm.Mismatches),
		"all; 0", verdict(rep.Warm.Failures == 0 && rep.Warm.Mismatches == 0)})

	if cfg.runs("steady") {
		if err := runSteady(env, cfg, tokens, rep, step); err != nil {
			return nil, err
		}
	}
	if cfg.runs("hotpath") {
		step("ServeHTTP on the cache-hit path")
		if rep.Hot, err = hotPath(tokens, oids, !cfg.Smoke); err != nil {
			return nil, err
		}
		rep.Rows = append(rep.Rows, rep.Hot.rows()...)
	}
	if cfg.runs("session") { // before the herds, which slow the emulator down
		if err := runSession(env, cfg, rep, step); err != nil {
			return nil, err
		}
	}
	if cfg.runs("herd") {
		if err := runHerds(env, cfg, rep, step); err != nil {
			return nil, err
		}
	}
	if cfg.runs("expiry") {
		step("expiry: %d users under load for %s, refresh_in %s", cfg.ExpiryUsers, cfg.ExpiryFor, cfg.RefreshIn)
		if rep.Expiry, err = expiry(env, expiryPlan{Users: cfg.ExpiryUsers, Conns: cfg.ExpiryConns,
			For: cfg.ExpiryFor, RefreshIn: cfg.RefreshIn, Delay: cfg.ExpiryDelay}); err != nil {
			return nil, err
		}
		rep.Rows = append(rep.Rows, rep.Expiry.rows()...)
	}
	// Before the scale item, whose 50,000 users' state would make every collection of the memory item's fills
	// slower (16.7 s instead of 12.9 s for the 1M fill).
	if cfg.runs("memory") {
		for _, n := range cfg.MemSizes {
			step("memory: %s cached entries", count(n))
			// Capacity is split evenly over up to 64 shards and keys are hashed, so a cache of exactly n
			// entries evicts before it holds n; headroom keeps every entry, to measure each one.
			rep.Mem = append(rep.Mem, measureMemory(n, 2*n))
		}
		step("memory: cap %s filled with %s", count(cfg.CapEntries), count(cfg.CapEntries*3/2))
		rep.Cap = measureMemory(cfg.CapEntries*3/2, cfg.CapEntries)
		rep.Rows = append(rep.Rows, memoryRows(rep.Mem, rep.Cap)...)
	}
	if cfg.runs("scale") { // before redis: it needs the memory-only cache; the million entries are dropped after
		if err := runScale(env, cfg, rep, step); err != nil {
			return nil, err
		}
	}
	if cfg.runs("redis") { // after the items that need the memory-only config's cache; it restores the config
		if err := runRedis(env, cfg, tokens, oids, rep, step); err != nil {
			return nil, err
		}
	}

	slices.SortStableFunc(rep.Rows, func(a, b Row) int { return strings.Compare(a.Item, b.Item) })
	rep.Took = time.Since(start)
	step("done")
	return rep, nil
}

// runSteady runs the steady state at one connection (latency without queueing) and at cfg.Conns (throughput),
// profiling the loaded level when asked.
func runSteady(env *harness.Env, cfg Config, tokens []string, rep *Report, step func(string, ...any)) error {
	for _, conns := range []int{1, cfg.Conns} {
		step("steady state, %d connection(s): %d pairs of %s rounds", conns, cfg.Pairs, cfg.Round)
		stopProfile := func() error { return nil }
		plan := bearerPlan(env, tokens)
		if conns == cfg.Conns && cfg.Profile != "" {
			var err error
			if stopProfile, err = startProfiles(cfg.Profile, ""); err != nil {
				return err
			}
			plan.ProfileDir = cfg.Profile
		}
		lvl, err := steadyState(env, plan, conns, cfg.Pairs, cfg.Round)
		if perr := stopProfile(); err == nil {
			err = perr
		}
		if err != nil {
			return err
		}
		rep.Steady = append(rep.Steady, lvl)
		rep.Rows = append(rep.Rows, lvl.rows()...)
	}
	return nil
}

// runHerds mints the herd users' tokens, then runs the one-user herd and the many-user herd.
func runHerds(env *harness.Env, cfg Config, rep *Report, step func(string, ...any)) error {
	oneUser, herdFrom := cfg.Users, cfg.herdFrom()
	step("herds: minting %d more caller tokens", cfg.HerdUsers+1)
	herdUsers, _ := harness.Users(herdFrom, cfg.HerdUsers)
	herdTokens, err := env.A.Mint(herdUsers)
	if err != nil {
		return err
	}
	one, _ := harness.Users(oneUser, 1)
	oneToken, err := env.A.Mint(one)
	if err != nil {
		return err
	}
	step("herd: %d concurrent first requests of one user", cfg.HerdOne)
	ones := make([]string, cfg.HerdOne)
	for i := range ones {
		ones[i] = oneToken[0] // one user, one SSO token, many tabs
	}
	if rep.HerdOne, err = herd(env, one, ones, cfg.HerdDelay); err != nil {
		return err
	}
	step("herd: %d users at once", cfg.HerdUsers)
	if rep.HerdMany, err = herd(env, herdUsers, herdTokens, cfg.HerdDelay); err != nil {
		return err
	}
	rep.Rows = append(rep.Rows, herdRows(rep.HerdOne, rep.HerdMany)...)
	return nil
}

// startProfiles writes the allocation profile and returns the function that writes it again after the level (go
// tool pprof -sample_index=alloc_space -diff_base allocs-before.pprof allocs-after.pprof). CPU is profiled per
// round (profile.go). Each file name starts with prefix: "" for item 1, "session-" for item 6, "scale-" for item 7.
func startProfiles(dir, prefix string) (func() error, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if err := writeProfile(filepath.Join(dir, prefix+"allocs-before.pprof"), "allocs"); err != nil {
		return nil, err
	}
	return func() error { return writeProfile(filepath.Join(dir, prefix+"allocs-after.pprof"), "allocs") }, nil
}

func writeProfile(path, name string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.Lookup(name).WriteTo(f, 0); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Violations lists what is wrong that is not a timing: these hold on any machine, however slow or noisy.
func (r *Report) Violations(cfg Config) []string {
	var v []string
	check := func(ok bool, format string, args ...any) {
		if !ok {
			v = append(v, fmt.Sprintf(format, args...))
		}
	}
	check(r.Warm.Failures == 0 && r.Warm.Mismatches == 0, "warm-up: %+v", r.Warm)
	for _, l := range r.Steady {
		check(l.NotOK == 0, "steady %d conns: %d of %d responses not 200", l.Conns, l.NotOK, l.Requests)
		check(l.UpstreamReq == int64(l.Requests), "steady %d conns: %d requests reached the upstream, want %d",
			l.Conns, l.UpstreamReq, l.Requests)
	}
	if cfg.runs("hotpath") {
		check(r.Hot.Checked > 0, "hot path: no injected token checked")
	}
	if cfg.runs("session") {
		v = append(v, r.Session.violations()...)
	}
	for _, m := range r.Mem {
		check(m.Held == m.Inserted, "memory: %d of %d entries held under cap %d", m.Held, m.Inserted, m.Cap)
	}
	if cfg.runs("memory") {
		check(r.Cap.Held <= r.Cap.Cap && r.Cap.Held > 0, "cap: %d entries held, cap %d", r.Cap.Held, r.Cap.Cap)
	}
	if cfg.runs("herd") {
		v = append(v, r.herdViolations()...)
	}
	if cfg.runs("scale") {
		v = append(v, r.Scale.violations()...)
	}
	if cfg.runs("expiry") {
		e := r.Expiry
		check(e.NotOK == 0, "expiry: %d of %d responses not 200", e.NotOK, e.Requests)
		check(e.Refreshes >= e.Users, "expiry: %d background refreshes for %d users", e.Refreshes, e.Users)
	}
	return v
}

func (r *Report) herdViolations() []string {
	var v []string
	check := func(ok bool, format string, args ...any) {
		if !ok {
			v = append(v, fmt.Sprintf(format, args...))
		}
	}
	h := r.HerdOne
	check(h.IdPCalls == 1, "herd of one user: %d IdP calls, want 1", h.IdPCalls)
	check(h.OK == h.Requests, "herd of one user: %d of %d responses 200", h.OK, h.Requests)
	h = r.HerdMany
	check(h.IdPCalls == h.Users && h.UsersNotOne == 0, "herd of %d users: %d IdP calls, %d users not exactly 1",
		h.Users, h.IdPCalls, h.UsersNotOne)
	check(h.OK == h.Requests, "herd of %d users: %d of %d responses 200", h.Users, h.OK, h.Requests)
	return v
}
