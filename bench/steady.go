package main

import (
	"fmt"
	"runtime"
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

// runRound is one closed-loop round of conns connections for d, next choosing each request.
func runRound(host string, conns int, d time.Duration, next func(c, i int) []byte) (roundStats, error) {
	var res loadgen.Result
	var err error
	cpu0, _ := processCPU()
	harness.WithRole(harness.RoleClient, func() {
		res, err = loadgen.Run(loadgen.Plan{Addr: host, Conns: conns, Duration: d, Next: next})
	})
	cpu1, _ := processCPU()
	if err != nil {
		return roundStats{}, err
	}
	lat := res.Latencies()
	return roundStats{RPS: res.RPS(), P50: loadgen.Percentile(lat, 0.50), P99: loadgen.Percentile(lat, 0.99),
		N: len(res.Samples), NotOK: res.NotOK(), CPU: (cpu1 - cpu0) / time.Duration(max(len(res.Samples), 1))}, nil
}

// steadyPlan is what a steady-state comparison sends: each user's request on the control route and on the
// measured route, each route on a server of its own (harness.Env.AddrOf), with the same bytes in and out.
type steadyPlan struct {
	Item  string // the table's item: "1" (bearer tokens) or "6" (cookie sessions)
	Name  string // the rows' prefix: "steady" or "session"
	Route string // the measured route's name in the rows: "injector" or "session"
	// PlainAddr and MeasAddr are the two routes' servers.
	PlainAddr, MeasAddr string
	Plain               [][]byte
	Meas                [][]byte
	// ProfileDir, when set, receives a CPU profile of each measured round, in a file of its route whose name
	// starts with ProfilePrefix, so the two routes can be compared per request (profile.go).
	ProfileDir, ProfilePrefix string
}

// bearerPlan is item 1: each user's caller token in Authorization, on /plain/ and /inj/. The injector sends
// upstream a downstream token of the caller token's size, so both routes carry the same bytes.
func bearerPlan(env *harness.Env, tokens []string) steadyPlan {
	return steadyPlan{Item: "1", Name: "steady", Route: "injector",
		PlainAddr: env.AddrOf(harness.PathPlain), MeasAddr: env.AddrOf(harness.PathInj),
		Plain: env.Requests(harness.PathPlain, tokens, loadgen.GET), Meas: env.Requests(harness.PathInj, tokens, loadgen.GET)}
}

// sessionPlan is item 6: each signed-in user's session cookie ("name=value") and no Authorization, on /sess/ and
// on its control, /sctl/, which sends upstream a fixed Authorization header of the session route's size and no
// cookie (harness.PathSessControl): the same bytes in and out, so the ratio measures the proxy, not bytes.
func sessionPlan(env *harness.Env, cookies []string) steadyPlan {
	return steadyPlan{Item: "6", Name: "session", Route: "session",
		PlainAddr: env.AddrOf(harness.PathSessControl), MeasAddr: env.AddrOf(harness.PathSess),
		Plain: env.Requests(harness.PathSessControl, cookies, loadgen.GETCookie),
		Meas:  env.Requests(harness.PathSess, cookies, loadgen.GETCookie)}
}

// steadyLevel is the steady-state comparison at one number of connections. Every figure is a median over the
// measured rounds (or over the pairs of rounds, for ratios and differences), so one noisy round moves nothing.
// "Inj" is the measured route: the injector with bearer tokens (item 1) or with cookie sessions (item 6).
type steadyLevel struct {
	Item, Name  string
	Route       string
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

// steadyState runs closed-loop keep-alive load with conns connections on /plain/ and the measured route in
// alternating rounds (ABBA: plain,measured then measured,plain, so a drift in machine speed hits both routes
// alike), after one unmeasured warm-up pair. Each request is a user's GET with the user's credential (caller
// token or session cookie), whose downstream token is cached.
func steadyState(env *harness.Env, plan steadyPlan, conns, pairs int, round time.Duration) (steadyLevel, error) {
	plain, inj := plan.Plain, plan.Meas
	users := len(plain)
	runOne := func(measured bool, d time.Duration) (roundStats, error) {
		host, reqs := plan.PlainAddr, plain
		if measured {
			host, reqs = plan.MeasAddr, inj
		}
		return runRound(host, conns, d, func(c, i int) []byte {
			return reqs[(c+i*conns)%users] // each connection walks through every user
		})
	}

	lvl := steadyLevel{Item: plan.Item, Name: plan.Name, Route: plan.Route, Conns: conns}
	if _, err := runOne(false, round/2); err != nil { // warm-up: connections, pools, CPU caches
		return lvl, err
	}
	if _, err := runOne(true, round/2); err != nil {
		return lvl, err
	}
	before := env.Trivial.Requests()
	for p := range pairs {
		runtime.GC()                 // a collection cycle then lands in neither round of the pair rather than in one of them
		order := []bool{false, true} // false = plain
		if p%2 == 1 {
			order = []bool{true, false}
		}
		for _, isInj := range order {
			stop, err := plan.profileRound(isInj, p)
			if err != nil {
				return lvl, err
			}
			st, err := runOne(isInj, round)
			if perr := stop(st.N); err == nil {
				err = perr
			}
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
	lvl.UpstreamReq = env.Trivial.Requests() - before
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

// rows renders the level against the targets (item 6's are item 1's).
func (l *steadyLevel) rows() []Row {
	name := fmt.Sprintf("%s, %d conn", l.Name, l.Conns)
	if l.Conns > 1 {
		name += "s"
	}
	it, r := l.Item, l.Route
	return []Row{
		{it, name + ": rps plain / " + r, fmt.Sprintf("%.0f / %.0f", l.medianRPS(l.Plain), l.medianRPS(l.Inj)), "", ""},
		{it, name + ": rps ratio " + r + "/plain (median of pairs; range)",
			fmt.Sprintf("%.3f (%.3f–%.3f)", l.Ratio, l.RatioMin, l.RatioMax), "≥ 0.95", verdict(l.Ratio >= 0.95)},
		{it, name + ": p50 plain / " + r, fmt.Sprintf("%s / %s ms", ms(l.P50Plain), ms(l.P50Inj)), "", ""},
		{it, name + ": added latency p50", ms(l.AddedP50) + " ms", "≤ 0.3 ms", verdict(l.AddedP50 <= 300*time.Microsecond)},
		{it, name + ": p99 plain / " + r, fmt.Sprintf("%s / %s ms", ms(l.P99Plain), ms(l.P99Inj)), "", ""},
		{it, name + ": added latency p99", ms(l.AddedP99) + " ms", "≤ 1 ms", verdict(l.AddedP99 <= time.Millisecond)},
		{it, name + ": process CPU per request plain / " + r + " (client, proxy, upstream)",
			fmt.Sprintf("%s / %s µs (%s %+.1f µs)", us(l.CPUPlain), us(l.CPUInj), r, float64(l.AddedCPU)/float64(time.Microsecond)), "", ""},
		{it, name + ": responses not 200", fmt.Sprintf("%d of %d", l.NotOK, l.Requests), "0", verdict(l.NotOK == 0)},
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
