package main

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tokeninjector/caddy-token-injector/bench/harness"
	"github.com/tokeninjector/caddy-token-injector/bench/loadgen"
	"github.com/tokeninjector/caddy-token-injector/internal/dev/entraemu"
)

// herdResult is item 4: requests arriving at once for users whose tokens are not cached.
type herdResult struct {
	Requests, Users int
	OK, NotOK       int
	Status          map[int]int // responses by status; 0 counts requests that got none
	IdPCalls        int         // OBO requests that reached the emulator
	UsersNotOne     int         // users with other than exactly one OBO call (many-user herd)
	MaxPerUser      int
	Elapsed         time.Duration
	P50, P99, Max   time.Duration
	PeakTotal       int // goroutines in the whole process
	PeakCaddy       int // goroutines started by Caddy (its connections, handlers, flights, MSAL's transport)
	PeakClient      int
	PeakIdP         int // the emulator's server goroutines: about 2 per connection plus 1 per request in progress
	PeakFDs         int // open file descriptors of the process (both ends of each in-process connection)
	ServerErrors    int // errors the emulator's and upstreams' servers logged (refused connections, TLS)
	ServerErrKinds  []string
	IdPDelay        time.Duration
}

// herd sends one request per token, all at once, through /inj/ while the emulator answers every token request
// delay late. users are the tokens' owners (for per-user call counts).
func herd(env *harness.Env, users []entraemu.User, tokens []string, delay time.Duration) (herdResult, error) {
	env.A.Emu.SetFault("*", entraemu.Fault{Kind: entraemu.FaultSlow, Delay: delay})
	defer env.A.Emu.ClearFaults()
	before := env.A.Emu.Counters()
	errsBefore := env.ServerErrors.Snapshot()
	reqs := make([][]byte, len(tokens))
	for i, t := range tokens {
		reqs[i] = loadgen.GET(env.Addr, harness.PathInj+"me", t)
	}
	sampler := startGoroutineSampler(50 * time.Millisecond)
	var res loadgen.Result
	var err error
	harness.WithRole(harness.RoleClient, func() {
		res, err = loadgen.Burst(env.Addr, len(reqs), func(i int) []byte { return reqs[i] }, 2*time.Minute)
	})
	peak, byRole := sampler.Stop()
	fds := sampler.PeakFDs()
	if err != nil {
		return herdResult{}, err
	}
	after := env.A.Emu.Counters()
	lat := res.Latencies()
	r := herdResult{Requests: len(reqs), OK: res.OK(), NotOK: res.NotOK(), Elapsed: res.Elapsed, Status: res.Status,
		IdPCalls: after.ByGrant[entraemu.GrantOBO] - before.ByGrant[entraemu.GrantOBO],
		P50:      loadgen.Percentile(lat, 0.5), P99: loadgen.Percentile(lat, 0.99), Max: loadgen.Percentile(lat, 1),
		PeakTotal: peak, PeakCaddy: byRole[harness.RoleCaddy], PeakClient: byRole[harness.RoleClient], IdPDelay: delay,
		PeakIdP: byRole[harness.RoleIdP], PeakFDs: fds}
	seen := map[string]bool{}
	for _, u := range users {
		if seen[u.Key] {
			continue
		}
		seen[u.Key] = true
		n := after.ByUserGrant[u.Key][entraemu.GrantOBO] - before.ByUserGrant[u.Key][entraemu.GrantOBO]
		r.MaxPerUser = max(r.MaxPerUser, n)
		if n != 1 {
			r.UsersNotOne++
		}
	}
	r.Users = len(seen)
	r.ServerErrors, r.ServerErrKinds = env.ServerErrors.Since(errsBefore)
	if res.Errors > 0 {
		r.Status[0] += res.Errors
	}
	return r, nil
}

// statuses lists the responses that were not 200, e.g. " (504: 12)".
func (h herdResult) statuses() string {
	var s []string
	for code, n := range h.Status {
		if code != 200 {
			s = append(s, fmt.Sprintf("%d: %d", code, n))
		}
	}
	if len(s) == 0 {
		return ""
	}
	slices.Sort(s)
	return " (" + strings.Join(s, ", ") + ")"
}

// Throughput is requests answered per second, from the moment they were all sent to the last answer.
func (h herdResult) Throughput() float64 { return float64(h.OK+h.NotOK) / h.Elapsed.Seconds() }

func herdRows(one, many herdResult) []Row {
	return []Row{
		{"4", fmt.Sprintf("%d concurrent first requests, 1 user (IdP +%s): IdP calls", one.Requests, one.IdPDelay),
			fmt.Sprint(one.IdPCalls), "1", verdict(one.IdPCalls == 1)},
		{"4", "  … responses 200; p50 / p99 latency", fmt.Sprintf("%d of %d%s; %s / %s ms", one.OK, one.Requests,
			one.statuses(), ms(one.P50), ms(one.P99)), fmt.Sprint(one.Requests), verdict(one.OK == one.Requests)},
		{"4", fmt.Sprintf("%d distinct users at once (IdP +%s): IdP calls; users ≠ 1 call", many.Users, many.IdPDelay),
			fmt.Sprintf("%d; %d (max %d per user)", many.IdPCalls, many.UsersNotOne, many.MaxPerUser),
			"1 per user", verdict(many.UsersNotOne == 0 && many.IdPCalls == many.Users)},
		{"4", "  … responses 200; throughput; all answered in", fmt.Sprintf("%d of %d%s; %.0f req/s; %s s", many.OK,
			many.Requests, many.statuses(), many.Throughput(), secs(many.Elapsed)), fmt.Sprint(many.Requests), verdict(many.OK == many.Requests)},
		{"4", "  … p50 / p99 / max latency", fmt.Sprintf("%s / %s / %s ms", ms(many.P50), ms(many.P99), ms(many.Max)), "", ""},
		{"4", "  … peak goroutines: Caddy / emulator / load generator / whole process",
			fmt.Sprintf("%d / %d / %d / %d", many.PeakCaddy, many.PeakIdP, many.PeakClient, many.PeakTotal), "", ""},
		{"4", "  … peak open file descriptors (process: both ends of every connection)",
			fmt.Sprint(many.PeakFDs), "", ""},
		{"4", "  … errors logged by the emulator's and upstreams' servers", many.serverErrors(), "", ""},
	}
}

// serverErrors is the count of the servers' errors and the most frequent kind.
func (h herdResult) serverErrors() string {
	if h.ServerErrors == 0 {
		return "0"
	}
	first := h.ServerErrKinds[0]
	if len(first) > 70 {
		first = first[:70] + "…"
	}
	return fmt.Sprintf("%d (%s)", h.ServerErrors, strings.TrimSpace(first))
}
