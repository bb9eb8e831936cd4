// Package health answers container probes: liveness (the process serves HTTP) and readiness (the checks a
// registration needs to serve requests: signing keys held, Entra reachable recently, Redis reachable when
// configured). Checks are functions, so each tier brings its own without this package knowing it.
package health

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"time"
)

// Check is one readiness condition. Run returns nil when the condition holds; its error text is shown to the
// probe's caller, so it must not carry a secret.
type Check struct {
	Name string
	Run  func(ctx context.Context) error
}

// Report is the readiness answer's JSON body.
type Report struct {
	// Status is "Healthy" or "Unhealthy", the words ASP.NET Core health checks (and so the Entra auth sidecar's
	// /healthz) answer with.
	Status string `json:"status"`
	// Checks maps each check's name to "ok" or the reason it failed.
	Checks map[string]string `json:"checks"`
}

// Healthy and Unhealthy are the status words.
const (
	Healthy   = "Healthy"
	Unhealthy = "Unhealthy"
)

// Evaluate runs the checks concurrently, each bounded by timeout.
func Evaluate(ctx context.Context, timeout time.Duration, checks []Check) Report {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	rep := Report{Status: Healthy, Checks: make(map[string]string, len(checks))}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, c := range checks {
		wg.Go(func() {
			result := "ok"
			if err := c.Run(ctx); err != nil {
				result = err.Error()
			}
			mu.Lock()
			defer mu.Unlock()
			rep.Checks[c.Name] = result
			if result != "ok" {
				rep.Status = Unhealthy
			}
		})
	}
	wg.Wait()
	return rep
}

// ServeLive answers a liveness probe: the process is up and serving. It is the Entra auth sidecar's /healthz
// answer (Program.cs maps ASP.NET Core's health checks, which write "Healthy" as text/plain).
func ServeLive(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "text/plain")
	h.Set("Cache-Control", "no-store")
	_, _ = w.Write([]byte(Healthy))
}

// ServeReady answers a readiness probe: 200 when every check holds, else 503, with the Report as JSON.
func ServeReady(w http.ResponseWriter, r *http.Request, timeout time.Duration, checks []Check) {
	rep := Evaluate(r.Context(), timeout, checks)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	status := http.StatusOK
	if rep.Status != Healthy {
		status = http.StatusServiceUnavailable
	}
	body, _ := json.Marshal(rep)
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}

// Memo runs check at most once per every: probes arrive every few seconds from every kubelet and load balancer,
// and each must not become a call to Entra. Concurrent callers share one run.
func Memo(every time.Duration, check func(ctx context.Context) error) func(ctx context.Context) error {
	var (
		mu   sync.Mutex
		at   time.Time
		last error
		ran  bool
	)
	return func(ctx context.Context) error {
		mu.Lock()
		defer mu.Unlock()
		if ran && time.Since(at) < every {
			return last
		}
		last, at, ran = check(ctx), time.Now(), true
		return last
	}
}
