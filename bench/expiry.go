package main

import (
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/tokeninjector/caddy-token-injector/bench/harness"
	"github.com/tokeninjector/caddy-token-injector/bench/loadgen"
	"github.com/tokeninjector/caddy-token-injector/internal/dev/entraemu"
)

// expiryResult is item 5: steady load on users whose tokens reach their refresh time again and again.
//
// MSAL Go treats tokens with expires_in <= 300s as already expired, and the engine never refreshes before half
// a token's remaining life (refreshOn), so a lifetime-based crossing would take minutes. Tenant B instead sends
// Entra's refresh_in (Config.RefreshIn), which the engine honours as the token's refresh time: every RefreshIn
// each active user's token is renewed in the background. Tenant B also answers every token request IdPDelay
// late, so a request that waited for a renewal in the foreground would take at least IdPDelay.
//
// Renewals come in waves (users were cached together), and the emulator signs each new token with RSA on the
// same two cores as everything else, so the machine is busier during a wave whatever the proxy does. Half of the
// connections therefore send the same users' requests to /plain/ at the same time: the control. What counts is
// how much more the injector's p99 rises near renewals than the control's.
type expiryResult struct {
	Users, Conns        int
	Duration, RefreshIn time.Duration
	IdPDelay            time.Duration
	Requests, NotOK     int
	Refreshes           int     // OBO calls during the run: all background renewals, every user being cached
	WindowShare         float64 // share of the run inside refresh windows
	Inj, Plain          routeWindows
	PeakCaddy           int
}

// routeWindows splits one route's requests by whether they started near a renewal.
type routeWindows struct{ Near, Else windowStats }

// Rise is how much the route's p99 near renewals exceeds its p99 elsewhere.
func (w routeWindows) Rise() time.Duration { return w.Near.P99 - w.Else.P99 }

// ExtraRise is the injector's rise beyond the control's: what renewals cost the proxied requests themselves.
func (e expiryResult) ExtraRise() time.Duration { return e.Inj.Rise() - e.Plain.Rise() }

// windowStats are the requests that started inside (or outside) the windows around renewals.
type windowStats struct {
	N             int
	P50, P99, Max time.Duration
	Slow          int // at least IdPDelay: what a request waiting on the IdP would take
}

// expiryPlan sizes the run; RefreshIn must be what tenant B was started with.
type expiryPlan struct {
	Users, Conns          int
	For, RefreshIn, Delay time.Duration
}

func expiry(env *harness.Env, p expiryPlan) (expiryResult, error) {
	users, conns, d, delay := p.Users, p.Conns, p.For, p.Delay
	r := expiryResult{Users: users, Conns: conns, Duration: d, RefreshIn: p.RefreshIn, IdPDelay: delay}
	us, _ := harness.Users(0, users)
	tokens, err := env.B.Mint(us)
	if err != nil {
		return r, err
	}
	if _, err := env.Warm(harness.PathExpiry, tokens, nil); err != nil {
		return r, err
	}
	env.B.Emu.SetFault("*", entraemu.Fault{Kind: entraemu.FaultSlow, Delay: delay})
	defer env.B.Emu.ClearFaults()
	reqs := make([][]byte, users)    // even connections: the injector
	control := make([][]byte, users) // odd connections: plain reverse_proxy, same users, same time
	for u, t := range tokens {
		reqs[u] = loadgen.GET(env.Addr, harness.PathExpiry+"me", t)
		control[u] = loadgen.GET(env.Addr, harness.PathPlain+"me", t)
	}

	// The emulator counts an OBO request once its delay has passed; poll that count to time each renewal.
	var events []time.Time
	stop := make(chan struct{})
	var polling sync.WaitGroup
	startCalls := env.B.OBOCalls()
	polling.Go(func() {
		last := startCalls
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case now := <-tick.C:
				if n := env.B.OBOCalls(); n > last {
					events = append(events, now)
					last = n
				}
			}
		}
	})
	sampler := startGoroutineSampler(100 * time.Millisecond)
	var res loadgen.Result
	harness.WithRole(harness.RoleClient, func() {
		res, err = loadgen.Run(loadgen.Plan{Addr: env.Addr, Conns: conns, Duration: d, Next: func(c, i int) []byte {
			if c%2 == 1 {
				return control[(c/2+i*conns)%users]
			}
			return reqs[(c/2+i*conns)%users]
		}})
	})
	_, byRole := sampler.Stop()
	time.Sleep(delay + 100*time.Millisecond) // renewals started at the end are counted late
	close(stop)
	polling.Wait()
	if err != nil {
		return r, err
	}
	r.Refreshes = env.B.OBOCalls() - startCalls
	r.Requests, r.NotOK, r.PeakCaddy = len(res.Samples), res.NotOK(), byRole[harness.RoleCaddy]

	// A window spans the renewal's whole call (it started delay before it was counted) plus margins.
	var wins [][2]time.Duration
	for _, e := range events {
		at := e.Sub(res.Start)
		lo, hi := at-delay-50*time.Millisecond, at+100*time.Millisecond
		if n := len(wins); n > 0 && lo <= wins[n-1][1] {
			wins[n-1][1] = max(wins[n-1][1], hi)
			continue
		}
		wins = append(wins, [2]time.Duration{lo, hi})
	}
	var covered time.Duration
	for _, w := range wins {
		covered += min(w[1], d) - max(w[0], 0)
	}
	r.WindowShare = float64(covered) / float64(d)
	var lat [2][2][]time.Duration // [control?][near?]
	for _, s := range res.Samples {
		i, _ := slices.BinarySearchFunc(wins, s.At, func(w [2]time.Duration, t time.Duration) int {
			switch {
			case w[1] < t:
				return -1
			case w[0] > t:
				return 1
			}
			return 0
		})
		near := i < len(wins) && wins[i][0] <= s.At && s.At <= wins[i][1]
		lat[s.Conn%2][b2i(near)] = append(lat[s.Conn%2][b2i(near)], s.Latency)
	}
	r.Inj = routeWindows{Near: stats(lat[0][1], delay), Else: stats(lat[0][0], delay)}
	r.Plain = routeWindows{Near: stats(lat[1][1], delay), Else: stats(lat[1][0], delay)}
	return r, nil
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func stats(l []time.Duration, slow time.Duration) windowStats {
	slices.Sort(l)
	w := windowStats{N: len(l), P50: loadgen.Percentile(l, 0.5), P99: loadgen.Percentile(l, 0.99),
		Max: loadgen.Percentile(l, 1)}
	for _, v := range l {
		if v >= slow {
			w.Slow++
		}
	}
	return w
}

func (e expiryResult) rows() []Row {
	perUser := float64(e.Refreshes) / float64(e.Users)
	w := func(x windowStats) string { return fmt.Sprintf("%s / %s / %s", ms(x.P50), ms(x.P99), ms(x.Max)) }
	return []Row{
		{"5", fmt.Sprintf("refresh_in %s, %d users, %d conns, %s (IdP +%s): background refreshes",
			e.RefreshIn, e.Users, e.Conns, e.Duration, e.IdPDelay),
			fmt.Sprintf("%d (%.1f per user)", e.Refreshes, perUser), "≥ 1 per user", verdict(e.Refreshes >= e.Users)},
		{"5", fmt.Sprintf("  … injector p50 / p99 / max (ms) near refreshes (%.0f%% of run); elsewhere",
			100*e.WindowShare), w(e.Inj.Near) + "; " + w(e.Inj.Else), "", ""},
		{"5", "  … control: plain route, same users, same time; near; elsewhere",
			w(e.Plain.Near) + "; " + w(e.Plain.Else), "", ""},
		{"5", "  … p99 rise near refreshes: injector minus control", ms(e.ExtraRise()) + " ms",
			"≤ 1 ms (no spike)", verdict(e.ExtraRise() <= time.Millisecond)},
		{"5", fmt.Sprintf("  … requests that took ≥ the IdP's %s, injector (control): near; elsewhere", e.IdPDelay),
			fmt.Sprintf("%d (%d); %d (%d)", e.Inj.Near.Slow, e.Plain.Near.Slow, e.Inj.Else.Slow, e.Plain.Else.Slow),
			"no more than control", verdict(e.Inj.Near.Slow+e.Inj.Else.Slow <= e.Plain.Near.Slow+e.Plain.Else.Slow)},
		{"5", "  … responses not 200; peak Caddy goroutines", fmt.Sprintf("%d of %d; %d", e.NotOK, e.Requests,
			e.PeakCaddy), "0", verdict(e.NotOK == 0)},
	}
}
