package main

import (
	"bufio"
	"bytes"
	"os"
	"regexp"
	"runtime"
	"runtime/pprof"
	"strconv"
	"sync"
	"time"

	"github.com/tokeninjector/caddy-token-injector/bench/harness"
)

// goroutineSampler records the peak goroutine count while a scenario runs. Everything shares one process, so the
// total is split by the pprof role label every goroutine inherits from the code that started it (Caddy's
// listeners, the emulator's server, the load generator): the Caddy share is what the proxy itself would hold.
type goroutineSampler struct {
	stop chan struct{}
	done sync.WaitGroup

	peakTotal int
	peakRole  map[string]int
	peakFDs   int
}

// startGoroutineSampler counts all goroutines every millisecond (cheap) and takes a labelled goroutine profile
// every labelEvery (it walks every stack, so not too often).
func startGoroutineSampler(labelEvery time.Duration) *goroutineSampler {
	s := &goroutineSampler{stop: make(chan struct{}), peakRole: map[string]int{}}
	s.done.Go(func() {
		fast := time.NewTicker(time.Millisecond)
		defer fast.Stop()
		slow := time.NewTicker(labelEvery)
		defer slow.Stop()
		s.sampleRoles()
		for {
			select {
			case <-s.stop:
				s.sampleRoles()
				return
			case <-fast.C:
				s.peakTotal = max(s.peakTotal, runtime.NumGoroutine())
			case <-slow.C:
				s.sampleRoles()
			}
		}
	})
	return s
}

// Stop ends sampling and returns the peak total and the peak per role (each role's own peak).
func (s *goroutineSampler) Stop() (int, map[string]int) {
	close(s.stop)
	s.done.Wait()
	return s.peakTotal, s.peakRole
}

func (s *goroutineSampler) sampleRoles() {
	sum := 0
	for role, n := range goroutinesByRole() {
		s.peakRole[role] = max(s.peakRole[role], n)
		sum += n
	}
	s.peakTotal = max(s.peakTotal, sum)                      // the 1 ms ticks drop while the sampler waits for the CPU
	if fds, err := os.ReadDir("/proc/self/fd"); err == nil { // Linux; elsewhere the peak stays 0
		s.peakFDs = max(s.peakFDs, len(fds))
	}
}

// PeakFDs is the most file descriptors the process had open at a labelled sample: every TCP connection counts
// twice when both of its ends are in this process.
func (s *goroutineSampler) PeakFDs() int { return s.peakFDs }

var roleLabel = regexp.MustCompile(`"` + harness.RoleLabel + `":"([^"]*)"`)

// goroutinesByRole counts live goroutines by role label ("" for unlabelled ones) from the debug=1 goroutine
// profile, whose records are "<count> @ <pcs>" optionally followed by "# labels: {...}".
func goroutinesByRole() map[string]int {
	var buf bytes.Buffer
	_ = pprof.Lookup("goroutine").WriteTo(&buf, 1)
	out := map[string]int{}
	sc := bufio.NewScanner(&buf)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	pending, counted := 0, true
	flush := func(role string) {
		if !counted {
			out[role] += pending
			counted = true
		}
	}
	for sc.Scan() {
		line := sc.Bytes()
		if n, _, ok := bytes.Cut(line, []byte(" @ ")); ok && len(n) > 0 && n[0] >= '0' && n[0] <= '9' {
			flush("")
			pending, _ = strconv.Atoi(string(n))
			counted = false
			continue
		}
		if bytes.HasPrefix(line, []byte("# labels:")) {
			role := ""
			if m := roleLabel.FindSubmatch(line); m != nil {
				role = string(m[1])
			}
			flush(role)
		}
	}
	flush("")
	return out
}
