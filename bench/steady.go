package main

import (
	"fmt"
	"slices"
	"time"

	"github.com/tokeninjector/caddy-token-injector/bench/harness"
	"github.com/tokeninjector/caddy-token-injector/bench/loadgen"
)

// roundStats is one round on one route.
type roundStats struct {
	RPS      float64
	P50, P99 time.Duration
	N, NotOK int
	CPU      time.Duration // process CPU time per request: load generator, Caddy and upstream together
}

// steadyLevel is the steady-state comparison at one number of connections. Every figure is a median over the
// measured rounds (or over the pairs of rounds, for ratios and differences), so one noisy round moves nothing.
type steadyLevel struct {
	Conns       int
	Plain, Inj  []roundStats
	Ratio       float64 // median over pairs of injector rps / plain rps
	RatioMin    float64
	RatioMax    float64
	P50Plain    time.Duration
	P50Inj      time.Duration
	P99Plain    time.Duration
	P99Inj      time.Duration
	AddedP50    time.Duration // median over pairs of (injector p50 - plain p50)
	AddedP99    time.Duration
	CPUPlain    time.Duration // median process CPU per request
	CPUInj      time.Duration
	AddedCPU    time.Duration // median over pairs of (injector - plain) CPU per request
	Requests    int
	NotOK       int
	UpstreamReq int64 // requests that reached the upstream during the measured rounds
}

// steadyState runs closed-loop keep-alive load with conns connections on /plain/ and /inj/ in alternating rounds
// (ABBA: plain,inj then inj,plain, so a drift in machine speed hits both routes alike), after one unmeasured
// warm-up pair. Each request is a user's GET with the user's caller token, whose downstream token is cached.
func steadyState(env *harness.Env, tokens []string, conns, pairs int, round time.Duration) (steadyLevel, error) {
	host := env.Addr
	plain := make([][]byte, len(tokens))
	inj := make([][]byte, len(tokens))
	for u, t := range tokens {
		plain[u] = loadgen.GET(host, harness.PathPlain+"me", t) // the same header on both routes
		inj[u] = loadgen.GET(host, harness.PathInj+"me", t)
	}
	users := len(tokens)
	runOne := func(reqs [][]byte, d time.Duration) (roundStats, error) {
		var res loadgen.Result
		var err error
		cpu0, _ := processCPU()
		harness.WithRole(harness.RoleClient, func() {
			res, err = loadgen.Run(loadgen.Plan{Addr: host, Conns: conns, Duration: d, Next: func(c, i int) []byte {
				return reqs[(c+i*conns)%users] // each connection walks through every user
			}})
		})
		cpu1, _ := processCPU()
		if err != nil {
			return roundStats{}, err
		}
		lat := res.Latencies()
		return roundStats{RPS: res.RPS(), P50: loadgen.Percentile(lat, 0.50), P99: loadgen.Percentile(lat, 0.99),
			N: len(res.Samples), NotOK: res.NotOK(), CPU: (cpu1 - cpu0) / time.Duration(max(len(res.Samples), 1))}, nil
	}

	lvl := steadyLevel{Conns: conns}
	if _, err := runOne(plain, round/2); err != nil { // warm-up: connections, pools, CPU caches
		return lvl, err
	}
	if _, err := runOne(inj, round/2); err != nil {
		return lvl, err
	}
	before := env.Trivial.Requests.Load()
	for p := range pairs {
		order := []bool{false, true} // false = plain
		if p%2 == 1 {
			order = []bool{true, false}
		}
		for _, isInj := range order {
			reqs := plain
			if isInj {
				reqs = inj
			}
			st, err := runOne(reqs, round)
			if err != nil {
				return lvl, err
			}
			if isInj {
				lvl.Inj = append(lvl.Inj, st)
			} else {
				lvl.Plain = append(lvl.Plain, st)
			}
			lvl.Requests += st.N
			lvl.NotOK += st.NotOK
		}
	}
	lvl.UpstreamReq = env.Trivial.Requests.Load() - before
	lvl.summarize()
	return lvl, nil
}

func (l *steadyLevel) summarize() {
	var ratios []float64
	var d50, d99, dCPU []time.Duration
	for i := range l.Plain {
		ratios = append(ratios, l.Inj[i].RPS/l.Plain[i].RPS)
		d50 = append(d50, l.Inj[i].P50-l.Plain[i].P50)
		d99 = append(d99, l.Inj[i].P99-l.Plain[i].P99)
		dCPU = append(dCPU, l.Inj[i].CPU-l.Plain[i].CPU)
	}
	l.Ratio, l.RatioMin, l.RatioMax = median(ratios), slices.Min(ratios), slices.Max(ratios)
	l.AddedP50, l.AddedP99, l.AddedCPU = median(d50), median(d99), median(dCPU)
	pick := func(rs []roundStats, f func(roundStats) time.Duration) time.Duration {
		var v []time.Duration
		for _, r := range rs {
			v = append(v, f(r))
		}
		return median(v)
	}
	p50 := func(r roundStats) time.Duration { return r.P50 }
	p99 := func(r roundStats) time.Duration { return r.P99 }
	l.P50Plain, l.P50Inj = pick(l.Plain, p50), pick(l.Inj, p50)
	l.P99Plain, l.P99Inj = pick(l.Plain, p99), pick(l.Inj, p99)
	cpu := func(r roundStats) time.Duration { return r.CPU }
	l.CPUPlain, l.CPUInj = pick(l.Plain, cpu), pick(l.Inj, cpu)
}

func (l *steadyLevel) medianRPS(rs []roundStats) float64 {
	var v []float64
	for _, r := range rs {
		v = append(v, r.RPS)
	}
	return median(v)
}

// rows renders the level against the targets.
func (l *steadyLevel) rows() []Row {
	name := fmt.Sprintf("steady, %d conn", l.Conns)
	if l.Conns > 1 {
		name += "s"
	}
	return []Row{
		{"1", name + ": rps plain / injector", fmt.Sprintf("%.0f / %.0f", l.medianRPS(l.Plain), l.medianRPS(l.Inj)), "", ""},
		{"1", name + ": rps ratio injector/plain (median of pairs; range)",
			fmt.Sprintf("%.3f (%.3f–%.3f)", l.Ratio, l.RatioMin, l.RatioMax), "≥ 0.95", verdict(l.Ratio >= 0.95)},
		{"1", name + ": p50 plain / injector", fmt.Sprintf("%s / %s ms", ms(l.P50Plain), ms(l.P50Inj)), "", ""},
		{"1", name + ": added latency p50", ms(l.AddedP50) + " ms", "≤ 0.3 ms", verdict(l.AddedP50 <= 300*time.Microsecond)},
		{"1", name + ": p99 plain / injector", fmt.Sprintf("%s / %s ms", ms(l.P99Plain), ms(l.P99Inj)), "", ""},
		{"1", name + ": added latency p99", ms(l.AddedP99) + " ms", "≤ 1 ms", verdict(l.AddedP99 <= time.Millisecond)},
		{"1", name + ": process CPU per request plain / injector (client, proxy, upstream)",
			fmt.Sprintf("%s / %s µs (injector +%s µs)", us(l.CPUPlain), us(l.CPUInj), us(l.AddedCPU)), "", ""},
		{"1", name + ": responses not 200", fmt.Sprintf("%d of %d", l.NotOK, l.Requests), "0", verdict(l.NotOK == 0)},
	}
}

func median[T int64 | float64 | time.Duration](v []T) T {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// ===== EXTENSION POINT: item 6, the cookie-session path =====
//
// Proxy-managed sign-in (the registration's sign_in block: a sealed session cookie, tokens from the account's
// refresh token; caddymodule/signin.go) is being wired in while this suite is written. Until it has settled the
// suite reports "not measured" rather than a number for a path it cannot yet exercise faithfully. To fill it in:
//
//  1. harness: give tenant A's registration a sign_in block (cookie_secret) and add a route /sess/* with
//     token_injector in front of TrivialHandler; match /.auth/* too, as the sign_in golden file does.
//  2. Sign each user in once: GET /.auth/login, follow the emulator's authorize endpoint (its picker takes a
//     user key), return to /.auth/callback, and keep the session cookie from the final response.
//  3. Run steadyState's rounds on /sess/ with "Cookie: <name>=<value>" instead of Authorization (loadgen.GET
//     takes a bearer; add a cookie variant), alternating with /plain/ as item 1 does.
//  4. Add a harness.HotPath variant whose requests carry the cookie, for allocs/op on the session path.
//
// Report it as item 6 against item 1's targets.
func sessionRows() []Row {
	return []Row{{"6", "session path (cookie sessions)",
		"not measured: sign-in is being wired in; extension point in bench/steady.go", "as item 1", ""}}
}
