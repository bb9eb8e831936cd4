package main

import (
	"fmt"

	"github.com/tokeninjector/caddy-token-injector/bench/harness"
	"github.com/tokeninjector/caddy-token-injector/internal/dev/entraemu"
)

// sessionResult is item 6: item 1's steady state for users signed in through the proxy (sign_in) who send only
// their session cookie. /sess/ and /scheck/ use /inj/'s registration plus a sign_in block, in the same Caddy, so
// the control route, the token cache and the machine are item 1's.
type sessionResult struct {
	Users      int // users signed in
	SignIn     harness.SignInResult
	SignInIdP  map[string]int     // token requests to the emulator during sign-in, by grant
	Before     harness.WarmResult // one request per user through /scheck/ with only the cookie, before the load
	After      harness.WarmResult // the same after the load
	LaterIdP   map[string]int     // token requests from the first check to the last, by grant (all cached: none)
	Levels     []steadyLevel
	Hot        hotPathResult // ServeHTTP on the session cache-hit path
	HotChecked bool          // Hot was measured
	Control    controlBytes  // what the session route and its control send upstream
}

// controlBytes compares the Authorization header the session control sends upstream with the ones the session
// route sends, the users' downstream tokens: their lengths must match for the ratio to compare like with like.
type controlBytes struct {
	Control, Min, Max int
}

func (c controlBytes) row(item, prefix string) Row {
	return Row{item, prefix + "Authorization header sent upstream: session control (fixed) / session route (per user, min–max)",
		fmt.Sprintf("%d B / %d–%d B", c.Control, c.Min, c.Max), "the same size",
		verdict(c.same())}
}

func (c controlBytes) same() bool { return c.Control > 0 && c.Min == c.Control && c.Max == c.Control }

func (c controlBytes) violation() string {
	return fmt.Sprintf("the session control sends a %d-byte Authorization header upstream, the session route %d–%d bytes",
		c.Control, c.Min, c.Max)
}

// setSessionControl makes the session control send upstream the first user's downstream Authorization header
// (the one the captured handler name sends for that user) and returns how its length compares with every user's.
func setSessionControl(env *harness.Env, name string, oids []string) (controlBytes, error) {
	downstream, err := harness.DownstreamHeaders(name, oids)
	if err != nil {
		return controlBytes{}, err
	}
	c := controlBytes{Control: len(downstream[0]), Min: len(downstream[0]), Max: len(downstream[0])}
	for _, d := range downstream {
		c.Min, c.Max = min(c.Min, len(d)), max(c.Max, len(d))
	}
	return c, env.SetSessionControl(downstream[0])
}

// runSession signs cfg.SessionUsers users in (users of their own, numbered after the herds', so the sign-in alone
// caches their tokens), checks that each one's cookie gets their own token, then runs item 1's steady state with
// cookies, checks again, and measures ServeHTTP on the session path.
func runSession(env *harness.Env, cfg Config, rep *Report, step func(string, ...any)) error {
	res := &rep.Session
	users, oids := harness.Users(cfg.sessionFrom(), cfg.sessionUsers())
	res.Users = len(users)
	step("sessions: signing %d users in through the emulator's picker", len(users))
	c0 := env.A.Emu.Counters()
	cookies, si, err := env.SignIn(harness.PathSessCheck, users, cfg.SignInPages)
	res.SignIn = si
	if err != nil {
		return err
	}
	c1 := env.A.Emu.Counters()
	res.SignInIdP = grantsBetween(c0, c1)
	if res.Before, err = env.WarmSessions(harness.PathSessCheck, cookies, oids); err != nil {
		return err
	}
	if res.Control, err = setSessionControl(env, harness.CaptureSess, oids); err != nil {
		return err
	}
	for _, conns := range []int{1, cfg.Conns} {
		step("session steady state, %d connection(s): %d pairs of %s rounds", conns, cfg.Pairs, cfg.Round)
		stopProfile := func() error { return nil }
		plan := sessionPlan(env, cookies)
		if conns == cfg.Conns && cfg.Profile != "" {
			if stopProfile, err = startProfiles(cfg.Profile, "session-"); err != nil {
				return err
			}
			plan.ProfileDir, plan.ProfilePrefix = cfg.Profile, "session-"
		}
		lvl, err := steadyState(env, plan, conns, cfg.Pairs, cfg.Round)
		if perr := stopProfile(); err == nil {
			err = perr
		}
		if err != nil {
			return err
		}
		res.Levels = append(res.Levels, lvl)
	}
	if res.After, err = env.WarmSessions(harness.PathSessCheck, cookies, oids); err != nil {
		return err
	}
	res.LaterIdP = grantsBetween(c1, env.A.Emu.Counters())

	step("ServeHTTP on the session cache-hit path")
	hot, err := env.NewSessionHotPath(harness.CaptureSess, cookies, oids)
	if err != nil {
		return err
	}
	if res.Hot, err = measureHotPath(hot, len(cookies), !cfg.Smoke); err != nil {
		return err
	}
	res.HotChecked = true
	rep.Rows = append(rep.Rows, res.rows(cfg, rep.Hot)...)
	return nil
}

func grantsBetween(before, after entraemu.Counters) map[string]int {
	d := map[string]int{}
	for g, n := range after.ByGrant {
		if n -= before.ByGrant[g]; n != 0 {
			d[g] = n
		}
	}
	return d
}

func (s *sessionResult) rows(cfg Config, bearer hotPathResult) []Row {
	si := s.SignIn
	who := fmt.Sprintf("%d users", s.Users)
	if s.Users < cfg.Users {
		who += fmt.Sprintf(" (fewer than item 1's %d)", cfg.Users)
	}
	page := fmt.Sprintf("the first %d fetched the picker page", si.PagesRead)
	if si.PagesRead == s.Users {
		page = "each fetched the picker page"
	}
	rows := []Row{
		{"6", fmt.Sprintf("sign-in, cookie-jar clients through the emulator's picker: %s signed in; landed as another user", who),
			fmt.Sprintf("%d of %d; %d", si.Users-si.Failures-si.Mismatches, si.Users, si.Mismatches), "all; 0",
			verdict(si.Failures == 0 && si.Mismatches == 0)},
		{"6", fmt.Sprintf("  … sign-in time (%d at a time; %s); IdP token requests: code / refresh / OBO", si.Workers, page),
			fmt.Sprintf("%s s; %d / %d / %d", secs(si.Took), s.SignInIdP[entraemu.GrantAuthorizationCode],
				s.SignInIdP[entraemu.GrantRefreshToken], s.SignInIdP[entraemu.GrantOBO]), "", ""},
		{"6", "cookie only, via the token-checking stub, before / after the load: users served; tokens of another user",
			fmt.Sprintf("%d / %d of %d; %d / %d", s.Before.Requests-s.Before.Failures, s.After.Requests-s.After.Failures,
				s.Users, s.Before.Mismatches, s.After.Mismatches), "all; 0",
			verdict(s.Before.Failures+s.After.Failures == 0 && s.Before.Mismatches+s.After.Mismatches == 0 &&
				s.Before.Requests == s.Users && s.After.Requests == s.Users)},
		{"6", "  … IdP token requests from the first check to the last: code / refresh / OBO",
			fmt.Sprintf("%d / %d / %d", s.LaterIdP[entraemu.GrantAuthorizationCode], s.LaterIdP[entraemu.GrantRefreshToken],
				s.LaterIdP[entraemu.GrantOBO]), "", ""},
	}
	rows = append(rows, s.Control.row("6", ""))
	for i := range s.Levels {
		rows = append(rows, s.Levels[i].rows()...)
	}
	if s.HotChecked {
		own := s.Hot.Handler()
		// The bearer path's figure when item 2 ran in the same process, else its target.
		target, limit := "alone ≤ 1.5 µs", float64(hotPathNs)
		if bearer.Serve.Ns > 0 {
			target, limit = fmt.Sprintf("alone ≤ bearer's %.2f µs", bearer.Handler().Ns/1e3), max(bearer.Handler().Ns, 0)
		}
		rows = append(rows,
			Row{"6", fmt.Sprintf("ServeHTTP session cache hit, %d users, cookie remembered, session checked with the store: time/op", s.Hot.Users),
				fmt.Sprintf("%.2f µs (handler alone %.2f µs)", s.Hot.Serve.Ns/1e3, own.Ns/1e3), target, verdict(own.Ns <= limit)},
			Row{"6", "ServeHTTP session: allocs/op and B/op, handler alone (minus per-request setup)",
				fmt.Sprintf("%.0f allocs, %.0f B", own.Allocs, own.Bytes), "≤ 2 allocs", verdict(own.Allocs <= hotPathAllocs)})
	}
	return rows
}

// violations lists what is wrong with item 6 that is not a timing.
func (s *sessionResult) violations() []string {
	var v []string
	check := func(ok bool, format string, args ...any) {
		if !ok {
			v = append(v, fmt.Sprintf(format, args...))
		}
	}
	si := s.SignIn
	check(s.Users > 0 && si.Failures == 0 && si.Mismatches == 0, "session sign-in: %+v", si)
	for _, w := range []harness.WarmResult{s.Before, s.After} {
		check(w.Requests == s.Users && w.Failures == 0 && w.Mismatches == 0, "session check through the stub: %+v", w)
	}
	for _, l := range s.Levels {
		check(l.NotOK == 0, "session %d conns: %d of %d responses not 200", l.Conns, l.NotOK, l.Requests)
		check(l.UpstreamReq == int64(l.Requests), "session %d conns: %d requests reached the upstream, want %d",
			l.Conns, l.UpstreamReq, l.Requests)
	}
	check(s.HotChecked && s.Hot.Checked > 0, "session hot path: no injected token checked")
	check(s.Control.same(), "%s", s.Control.violation())
	return v
}
