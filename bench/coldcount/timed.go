package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"time"

	"github.com/tokeninjector/caddy-token-injector/bench/harness"
)

// The timed side of -whole: the same requests without callgrind, each kind's CPU time (user and kernel) by the
// kernel's accounting. With -timed it is all that runs, and each pair's ratio is printed pass by pass: the
// whole cost of a request, the kernel's included, against its control's, as a clock measures it. The clock is the
// process's CPU time, not the wall's, so the host's scheduling (the gaps a one-connection request waits in) does
// not land in one route's figure; other tenants of the host still do, and the null pair shows by how much.

// timedRequests is how many requests of each kind timeWhole sends, at least, for the kernel's share.
const timedRequests = 20_000

// cpuSplit is a kind's process CPU time, user and system, over one timed pass or several.
type cpuSplit struct{ user, system time.Duration }

func (c cpuSplit) total() time.Duration { return c.user + c.system }

// timeWhole runs -whole's requests in this process without callgrind and returns each kind's CPU time in each
// pass. A collection runs before each kind's requests, outside the timed span, so none lands in one kind's time.
// With profiles set, each kind's spans are profiled too, one file per span (profiles/<phase>.<pass>.pprof), so
// that pprof -diff_base can set a route's real-time profile against its control's.
func timeWhole(users, passes int, profiles string, opts harness.EnvOptions) (map[string][]cpuSplit, error) {
	if profiles != "" {
		if err := os.MkdirAll(profiles, 0o755); err != nil {
			return nil, err
		}
	}
	env, err := harness.StartEnv(opts)
	if err != nil {
		return nil, err
	}
	defer env.Close()
	reqs, err := wholeRequests(env, users)
	if err != nil {
		return nil, err
	}
	out := map[string][]cpuSplit{}
	err = runWhole(env, reqs, passes, func(k wholeKind, requests func() error) error {
		runtime.GC()
		stop, err := startProfile(profiles, k.phase, len(out[k.phase]))
		if err != nil {
			return err
		}
		u0, s0 := processCPU()
		err = requests()
		u1, s1 := processCPU()
		stop()
		out[k.phase] = append(out[k.phase], cpuSplit{u1 - u0, s1 - s0})
		return err
	})
	return out, err
}

// startProfile profiles one span of phase's requests into dir, if dir is set, and returns what stops it. The
// profiler samples each thread's CPU time 100 times a second and loses what a thread ran since its last sample
// when the span ends, so its totals fall short of processCPU's; read the shares of its functions, not its sums.
func startProfile(dir, phase string, pass int) (stop func(), err error) {
	if dir == "" {
		return func() {}, nil
	}
	f, err := os.Create(filepath.Join(dir, fmt.Sprintf("%s.%03d.pprof", phase, pass)))
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// sum adds up a kind's passes.
func sum(passes []cpuSplit) cpuSplit {
	var t cpuSplit
	for _, p := range passes {
		t.user, t.system = t.user+p.user, t.system+p.system
	}
	return t
}

// printTimed prints each pair's timed ratio (its control's CPU time over the route's, both with the kernel's):
// the median of the passes, their range, and each kind's CPU time per request.
func printTimed(w io.Writer, cpu map[string][]cpuSplit, users int) {
	fmt.Fprintf(w, "\ntimed without callgrind: CPU time per request, user and kernel, %d passes of %d requests of each kind\n\n",
		len(cpu[wholeKinds[0].phase]), users)
	fmt.Fprintln(w, "| pair | control, µs | route, µs | ratio, median of the passes | lowest | highest |\n| --- | --- | --- | --- | --- | --- |")
	for i := 0; i < len(wholeKinds); i += 2 {
		control, route := cpu[wholeKinds[i].phase], cpu[wholeKinds[i+1].phase]
		ratios := make([]float64, min(len(control), len(route)))
		for j := range ratios {
			ratios[j] = control[j].total().Seconds() / route[j].total().Seconds()
		}
		slices.Sort(ratios)
		perRequest := func(p []cpuSplit) float64 {
			return sum(p).total().Seconds() * 1e6 / float64(len(p)*users)
		}
		fmt.Fprintf(w, "| %s | %.1f | %.1f | %.3f | %.3f | %.3f |\n", wholeKinds[i+1].name, perRequest(control),
			perRequest(route), medianOf(ratios), ratios[0], ratios[len(ratios)-1])
	}
}

// medianOf is the median of sorted values.
func medianOf(sorted []float64) float64 {
	n := len(sorted)
	return (sorted[(n-1)/2] + sorted[n/2]) / 2
}
