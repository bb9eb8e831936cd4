package main

import (
	"errors"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/tokeninjector/caddy-token-injector/bench/harness"
)

// perOp is one measured loop: time, bytes and allocations per call.
type perOp struct {
	Ns, Bytes, Allocs float64
}

// hotPathResult is item 2: ServeHTTP on the cache-hit path, called directly on the handler Caddy provisioned.
type hotPathResult struct {
	Users    int
	Serve    perOp // per request, with the per-request setup Caddy's server also does
	Baseline perOp // that setup alone (a Replacer in the context)
	Checked  int   // users whose injected token was checked to be their own
}

// Handler is the handler's own cost: Serve minus Baseline.
func (h hotPathResult) Handler() perOp {
	return perOp{Ns: h.Serve.Ns - h.Baseline.Ns, Bytes: h.Serve.Bytes - h.Baseline.Bytes,
		Allocs: h.Serve.Allocs - h.Baseline.Allocs}
}

// hotPath measures the captured /inj/ handler with every steady-state user (all cached). With full set, it uses
// testing.Benchmark (about a second per loop, as go test -bench would); otherwise a short fixed loop, which is
// enough to show the path works and its allocation count.
func hotPath(tokens, oids []string, full bool) (hotPathResult, error) {
	hot, err := harness.NewHotPath(harness.CaptureInj, tokens, oids)
	if err != nil {
		return hotPathResult{}, err
	}
	return measureHotPath(hot, len(tokens), full)
}

// measureHotPath checks that about 50 of the users get their own token through hot, then measures it and the
// per-request setup alone.
func measureHotPath(hot *harness.HotPath, users int, full bool) (hotPathResult, error) {
	var err error
	res := hotPathResult{Users: users}
	check := hot.NewClient()
	for i := 0; i < users; i += max(1, users/50) {
		if err := check.Check(i); err != nil {
			return res, err
		}
		res.Checked++
	}
	if res.Serve, err = measure(hot.NewClient().Serve, full); err != nil {
		return res, err
	}
	res.Baseline, err = measure(hot.NewClient().Baseline, full)
	return res, err
}

func measure(f func() error, full bool) (perOp, error) {
	if full {
		var ferr error
		r := testing.Benchmark(func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := f(); err != nil && ferr == nil {
					ferr = err
				}
			}
		})
		if r.N == 0 {
			return perOp{}, errors.New("benchmark did not run")
		}
		return perOp{Ns: float64(r.NsPerOp()), Bytes: float64(r.AllocedBytesPerOp()), Allocs: float64(r.AllocsPerOp())}, ferr
	}
	const n = 2000
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	start := time.Now()
	for range n {
		if err := f(); err != nil {
			return perOp{}, err
		}
	}
	el := time.Since(start)
	runtime.ReadMemStats(&m1)
	return perOp{Ns: float64(el.Nanoseconds()) / n, Bytes: float64(m1.TotalAlloc-m0.TotalAlloc) / n,
		Allocs: float64(m1.Mallocs-m0.Mallocs) / n}, nil
}

// Targets of the handler's own cost on the bearer cache-hit path (issue 13); the session path's is this one's.
const (
	hotPathNs     = 1500
	hotPathAllocs = 2
)

func (h hotPathResult) rows() []Row {
	own := h.Handler()
	return []Row{
		{"2", fmt.Sprintf("ServeHTTP cache hit, %d users, validation included: time/op", h.Users),
			fmt.Sprintf("%.2f µs (handler alone %.2f µs)", h.Serve.Ns/1e3, own.Ns/1e3), "alone ≤ 1.5 µs", verdict(own.Ns <= hotPathNs)},
		{"2", "ServeHTTP: allocs/op and B/op, handler alone (minus per-request setup)",
			fmt.Sprintf("%.0f allocs, %.0f B", own.Allocs, own.Bytes), "≤ 2 allocs", verdict(own.Allocs <= hotPathAllocs)},
		{"2", "ServeHTTP: per-request setup Caddy also does (subtracted)",
			fmt.Sprintf("%.0f allocs, %.0f B, %.2f µs", h.Baseline.Allocs, h.Baseline.Bytes, h.Baseline.Ns/1e3), "", ""},
	}
}
