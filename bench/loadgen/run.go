package loadgen

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Sample is one request: when it started (since the run began), how long it took, and on which connection.
type Sample struct {
	At, Latency time.Duration
	Conn        int
}

// Result is a run's outcome.
type Result struct {
	Start   time.Time     // when the first request was sent; Sample.At counts from here
	Elapsed time.Duration // from the start until the last response
	Samples []Sample      // every completed request, in no particular order
	Status  map[int]int   // responses by status code
	Errors  int           // requests that got no response (connection errors, timeouts)
}

// OK is the number of 200 responses.
func (r Result) OK() int { return r.Status[200] }

// NotOK is the number of requests that did not get a 200.
func (r Result) NotOK() int { return len(r.Samples) - r.OK() + r.Errors }

// RPS is completed requests per second.
func (r Result) RPS() float64 { return float64(len(r.Samples)) / r.Elapsed.Seconds() }

// Latencies returns the sorted latencies.
func (r Result) Latencies() []time.Duration {
	l := make([]time.Duration, len(r.Samples))
	for i, s := range r.Samples {
		l[i] = s.Latency
	}
	slices.Sort(l)
	return l
}

// Percentile is the nearest-rank q-quantile (0 < q <= 1) of sorted latencies; 0 for none.
func Percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.999999) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// Plan is a closed-loop run: Conns connections each send a request, wait for the response, and send the next,
// until Duration has passed or Requests have been sent.
type Plan struct {
	Addr     string
	Conns    int
	Duration time.Duration // 0: no time bound (Requests bounds the run)
	// Requests, when set, ends the run once that many requests have been sent in all.
	Requests int
	// Next is the request connection c sends as its i-th.
	Next func(c, i int) []byte
	// Timeout bounds each request; default 30s.
	Timeout time.Duration
}

type worker struct {
	samples []Sample
	status  map[int]int
	errors  int
}

// Run executes p. Connections are opened before the clock starts.
func Run(p Plan) (Result, error) {
	if p.Timeout <= 0 {
		p.Timeout = 30 * time.Second
	}
	if p.Duration <= 0 && p.Requests <= 0 {
		return Result{}, fmt.Errorf("loadgen: a plan needs a Duration or a number of Requests")
	}
	conns := make([]*Conn, p.Conns)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	for i := range conns {
		c, err := Dial(p.Addr, p.Timeout)
		if err != nil {
			return Result{}, fmt.Errorf("loadgen: dial %s: %w", p.Addr, err)
		}
		conns[i] = c
	}
	workers := make([]worker, p.Conns)
	var wg sync.WaitGroup
	var sent atomic.Int64
	start := time.Now()
	for w := range workers {
		wg.Go(func() {
			st := &workers[w]
			st.status = map[int]int{}
			st.samples = make([]Sample, 0, 4096)
			for i := 0; ; i++ {
				t0 := time.Now()
				if p.Duration > 0 && t0.Sub(start) >= p.Duration ||
					p.Requests > 0 && sent.Add(1) > int64(p.Requests) {
					return
				}
				status, err := conns[w].Do(p.Next(w, i))
				if err != nil {
					st.errors++
					continue
				}
				st.samples = append(st.samples, Sample{At: t0.Sub(start), Latency: time.Since(t0), Conn: w})
				st.status[status]++
			}
		})
	}
	wg.Wait()
	return merge(workers, start), nil
}

// Burst opens n connections, then sends request(i) on connection i at the same moment, and waits for all the
// answers: n clients arriving at once.
func Burst(addr string, n int, request func(i int) []byte, timeout time.Duration) (Result, error) {
	conns := make([]*Conn, n)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	for i := range conns {
		c, err := Dial(addr, timeout)
		if err != nil {
			return Result{}, fmt.Errorf("loadgen: dial %d of %d: %w", i+1, n, err)
		}
		conns[i] = c
	}
	reqs := make([][]byte, n)
	for i := range reqs {
		reqs[i] = request(i)
	}
	workers := make([]worker, n)
	var ready, done sync.WaitGroup
	gate := make(chan struct{})
	var start time.Time
	for i := range workers {
		ready.Add(1)
		done.Go(func() {
			st := &workers[i]
			st.status = map[int]int{}
			ready.Done()
			<-gate
			t0 := time.Now()
			status, err := conns[i].Do(reqs[i])
			if err != nil {
				st.errors++
				return
			}
			st.samples = []Sample{{At: t0.Sub(start), Latency: time.Since(t0), Conn: i}}
			st.status[status]++
		})
	}
	ready.Wait()
	start = time.Now()
	close(gate)
	done.Wait()
	return merge(workers, start), nil
}

func merge(workers []worker, start time.Time) Result {
	r := Result{Start: start, Elapsed: time.Since(start), Status: map[int]int{}}
	n := 0
	for _, w := range workers {
		n += len(w.samples)
	}
	r.Samples = make([]Sample, 0, n)
	for _, w := range workers {
		r.Samples = append(r.Samples, w.samples...)
		for s, c := range w.status {
			r.Status[s] += c
		}
		r.Errors += w.errors
	}
	return r
}
