package acquire

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/tokeninjector/caddy-token-injector/internal/dev/testenv"
	"github.com/tokeninjector/caddy-token-injector/internal/metrics"
	"github.com/tokeninjector/caddy-token-injector/internal/tokencache"
)

// engineReports records what the engine reports, by source and outcome.
type engineReports struct {
	metrics.Nop
	mu                    sync.Mutex
	hits, misses, waiting int
	maxWaiting            int
	ok, failed            map[metrics.Source]int
}

func (r *engineReports) CacheLookup(hit bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if hit {
		r.hits++
	} else {
		r.misses++
	}
}

func (r *engineReports) Acquired(s metrics.Source, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err == nil {
		r.ok[s]++
	} else {
		r.failed[s]++
	}
}

func (r *engineReports) Waiting(d int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.waiting += d
	r.maxWaiting = max(r.maxWaiting, r.waiting)
}

func (r *engineReports) snapshot() engineReports {
	r.mu.Lock()
	defer r.mu.Unlock()
	return engineReports{hits: r.hits, misses: r.misses, waiting: r.waiting, maxWaiting: r.maxWaiting}
}

func TestEngineReportsSourcesAndWaiters(t *testing.T) {
	clock := testenv.NewClock(time.Time{})
	p := &countingProvider{lifetime: time.Hour, clock: clock.Now, release: make(chan struct{})}
	rep := &engineReports{ok: map[metrics.Source]int{}, failed: map[metrics.Source]int{}}
	e := New(tokencache.NewMemory(100, time.Minute, clock.Now), p, Config{Now: clock.Now, Metrics: rep})
	t.Cleanup(e.Close)

	// Ten requests wait on one identity-provider call.
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() { _, _ = e.Token(context.Background(), alice) })
	}
	waitFor(t, func() bool { return rep.snapshot().waiting == 10 })
	close(p.release)
	wg.Wait()
	// A hit, then one served while it is renewed in the background, then a refusal.
	p.release = nil
	_, _ = e.Token(context.Background(), alice)
	clock.Advance(56 * time.Minute)
	_, _ = e.Token(context.Background(), alice)
	waitFor(t, func() bool { rep.mu.Lock(); defer rep.mu.Unlock(); return rep.ok[metrics.SourceRenewal] == 1 })
	fail := error(&refusal{50076})
	p.fail.Store(&fail)
	if _, err := e.Token(context.Background(), userN(1)); err == nil {
		t.Fatal("want the refusal")
	}

	got := rep.snapshot()
	rep.mu.Lock()
	defer rep.mu.Unlock()
	if got.waiting != 0 || got.maxWaiting != 10 || got.misses != 11 || got.hits != 2 {
		t.Fatalf("waiting %d (max %d), misses %d, hits %d; want 0 (10), 11, 2", got.waiting, got.maxWaiting, got.misses, got.hits)
	}
	if rep.ok[metrics.SourceIdentityProvider] != 1 || rep.ok[metrics.SourceCache] != 2 || rep.ok[metrics.SourceRenewal] != 1 ||
		rep.failed[metrics.SourceIdentityProvider] != 1 {
		t.Fatalf("acquisitions ok %v failed %v; want 1 call for ten waiters, 2 hits, 1 renewal, 1 refusal", rep.ok, rep.failed)
	}
}
