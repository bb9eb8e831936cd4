// Package testenv is the one test environment of the repository: the Entra emulator over HTTPS with a CA made
// for the run, a recording upstream, an emulated browser, a fake clock and the process's in-process Caddy. The
// caddymodule tests, the benchmark suite and the emulator's own tests use it; production code never imports it.
package testenv

import (
	"sync"
	"time"
)

// Clock is a fake clock, safe for concurrent use. Pass Clock.Now wherever a package takes a time source.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a clock stopped at start, or at a fixed instant when start is zero.
func NewClock(start time.Time) *Clock {
	if start.IsZero() {
		start = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	}
	return &Clock{t: start}
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// Set moves the clock to t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}
