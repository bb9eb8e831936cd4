package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/tokeninjector/caddy-token-injector/bench/harness"
	"github.com/tokeninjector/caddy-token-injector/bench/loadgen"
)

// The whole-request mode (-whole) counts what the scale item times: requests over loopback through Caddy, each
// route against its control in the same process, with the same bytes. Everything the process does is counted,
// the load generator's side, Caddy's server and reverse_proxy, and the upstream, so a route minus its control is
// the handler's cost in place, with whatever it adds around itself. The kernel's side is not counted.

// wholeKind is one route of the scale item: its path, its credential, and the phase's name in the dumps. The kinds
// come in pairs, a control and then its route.
type wholeKind struct {
	name, phase, path string
	session           bool
}

var wholeKinds = []wholeKind{
	{"plain (bearer control)", "whole.plain", harness.PathPlain, false},
	{"bearer", "whole.bearer", harness.PathInj, false},
	{"plain (session control)", "whole.sessionControl", harness.PathSessControl, true},
	{"session", "whole.session", harness.PathSess, true},
	// The bearer control against itself, over a connection of its own: how evenly the method counts two routes.
	{"plain (null control)", "whole.nullControl", harness.PathPlain, false},
	{"null", "whole.null", harness.PathPlain, false},
}

// wholeRequests makes every user's state as the scale item does (a proven token, a cached downstream token, a
// session and its opened cookie, each taken once in the users' order through its route) and returns each kind's
// requests, scattered.
func wholeRequests(env *harness.Env, n int) ([][][]byte, error) {
	users, oids := harness.Users(0, n)
	tokens, err := env.A.Mint(users)
	if err != nil {
		return nil, err
	}
	if _, err := env.Warm(harness.PathCheck, tokens[:1], oids[:1]); err != nil {
		return nil, err
	}
	if _, err := env.SeedTokens(harness.CaptureInj, oids[0], tokens); err != nil {
		return nil, err
	}
	cookies, err := env.CreateSessions(harness.CaptureSess, users)
	if err != nil {
		return nil, err
	}
	// The session control carries a header of the session route's size upstream. Its reload comes first: what a
	// handler remembers of the cookies it opened does not outlive one.
	downstream, err := harness.DownstreamHeaders(harness.CaptureSess, oids[:1])
	if err != nil {
		return nil, err
	}
	if err := env.SetSessionControl(downstream[0]); err != nil {
		return nil, err
	}
	if _, err := env.WarmEach(harness.PathInj, tokens, loadgen.GET); err != nil {
		return nil, err
	}
	if _, err := env.WarmEach(harness.PathSess, cookies, loadgen.GETCookie); err != nil {
		return nil, err
	}
	tokens, cookies = scatter(tokens), scatter(cookies)
	reqs := make([][][]byte, len(wholeKinds))
	for i, k := range wholeKinds {
		if k.session {
			reqs[i] = env.Requests(k.path, cookies, loadgen.GETCookie)
		} else {
			reqs[i] = env.Requests(k.path, tokens, loadgen.GET)
		}
	}
	return reqs, nil
}

// runWhole sends each kind's requests over a connection of its own to its route's server, once uncounted and
// then passes times, and calls phase around each kind's requests of each counted pass. Each pass dials anew:
// under callgrind a connection waits minutes for its kind's turn, longer than a server keeps an idle one open. No
// collection runs during the passes, so none lands in one kind's count by chance.
func runWhole(env *harness.Env, reqs [][][]byte, passes int, phase func(k wholeKind, requests func() error) error) error {
	runtime.GC()
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	for pass := range passes + 1 {
		for i, k := range wholeKinds {
			c, err := loadgen.Dial(env.AddrOf(k.path), time.Minute)
			if err != nil {
				return err
			}
			requests := func() error { return sendAll(c, k, reqs[i]) }
			if pass > 0 {
				err = phase(k, requests)
			} else {
				err = requests()
			}
			c.Close()
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// sendAll sends reqs over c, one at a time, each answered 200.
func sendAll(c *loadgen.Conn, k wholeKind, reqs [][]byte) error {
	for _, r := range reqs {
		status, err := c.Do(r)
		if err != nil {
			return fmt.Errorf("%s: %w", k.path, err)
		}
		if status != 200 {
			return fmt.Errorf("%s answered %d", k.path, status)
		}
	}
	return nil
}

// serveWhole is the counted child's side of -whole: it has callgrind count each kind's requests of each pass in a
// dump of its own.
func serveWhole(users, passes int, opts harness.EnvOptions) error {
	env, err := harness.StartEnv(opts)
	if err != nil {
		return err
	}
	defer env.RemoveDir() // the servers are not stopped: see serve
	reqs, err := wholeRequests(env, users)
	if err != nil {
		return err
	}
	startInstrumentation()
	return runWhole(env, reqs, passes, func(k wholeKind, requests func() error) error {
		zeroCounts()
		if err := requests(); err != nil {
			return err
		}
		dumpCounts(k.phase)
		return nil
	})
}

// printWhole prints each kind's counts per request, each route's above its control, and the ratio the scale item
// times (its control's cost over the route's) as counted, with and without the kernel's share of the CPU.
func printWhole(w io.Writer, totals map[string][]float64, cpu map[string][]cpuSplit, requests int) {
	counts := func(phase string) []float64 {
		t := totals[phase]
		l1, ll := t[i1mr]+t[d1mr]+t[d1mw], t[ilmr]+t[dlmr]+t[dlmw]
		return perRequest([]float64{t[ir], l1, ll, cycles(t)}, requests)
	}
	fmt.Fprintf(w, "\nwhole requests, per request, %d of each kind (one connection each)\n\n", requests)
	fmt.Fprintln(w, "| | instructions | L1 misses | LL misses | estimated cycles |\n| --- | --- | --- | --- | --- |")
	for _, k := range wholeKinds {
		printRow(w, k.name, counts(k.phase))
	}
	fmt.Fprintln(w)
	for i := 0; i < len(wholeKinds); i += 2 {
		control, route := wholeKinds[i], wholeKinds[i+1]
		c, r := counts(control.phase), counts(route.phase)
		diff := make([]float64, len(c))
		for j := range c {
			diff[j] = r[j] - c[j]
		}
		printRow(w, route.name+" − its control", diff)
		split := sum(cpu[control.phase])
		user := 1.0 // no kernel share where the platform does not account it
		if total := split.user + split.system; total > 0 {
			user = split.user.Seconds() / total.Seconds()
		}
		fmt.Fprintf(w, "%s: counted ratio %.3f in instructions, %.3f in estimated cycles; user space is %.0f%% of the "+
			"control's CPU time, so with the kernel's share %.3f\n", route.name, c[0]/r[0], c[3]/r[3], 100*user,
			1/(1+user*(r[3]-c[3])/c[3]))
	}
}

// cycles is callgrind's estimate of the cycles its counts took, as KCachegrind's "CEst" without branch
// simulation: an instruction each, 10 more for a first-level miss, 100 more for a last-level one.
func cycles(t []float64) float64 {
	return t[ir] + 10*(t[i1mr]+t[d1mr]+t[d1mw]) + 100*(t[ilmr]+t[dlmr]+t[dlmw])
}
