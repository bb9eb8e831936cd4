package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/tokeninjector/caddy-token-injector/bench/harness"
	"github.com/tokeninjector/caddy-token-injector/internal/dev/testenv"
)

// TestSmoke runs every scenario in its smallest configuration, as CI does (go test -race ./bench/...), and checks
// what does not depend on timing: every response was 200, each herd made exactly one identity-provider call per
// user, the injected tokens were the callers' own (bearer and session), the cache cap held, tokens were renewed in
// the background, and the table is complete. Timings are printed, never asserted: this machine is shared and noisy.
func TestSmoke(t *testing.T) {
	testenv.Integration(t) // starts Caddy and two emulators
	var progress bytes.Buffer
	cfg := smokeConfig()
	cfg.ScaleNull = true // -scale-null: the bearer control paired with itself, too
	rep, err := run(cfg, &progress)
	if err != nil {
		t.Fatalf("%v\n%s", err, progress.String())
	}
	for _, v := range rep.Violations(cfg) {
		t.Error(v)
	}

	// The checks Violations makes, spelled out for the targets.
	if rep.HerdOne.IdPCalls != 1 || rep.HerdOne.OK != cfg.HerdOne {
		t.Errorf("one-user herd: %d IdP calls, %d of %d OK", rep.HerdOne.IdPCalls, rep.HerdOne.OK, cfg.HerdOne)
	}
	if h := rep.HerdMany; h.IdPCalls != cfg.HerdUsers || h.MaxPerUser != 1 || h.OK != cfg.HerdUsers {
		t.Errorf("many-user herd: %d IdP calls for %d users (max %d per user), %d OK", h.IdPCalls, cfg.HerdUsers,
			h.MaxPerUser, h.OK)
	}
	// Goroutine counts are split by the role label goroutines inherit: every server must carry its own.
	for _, role := range []string{"caddy", "idp", "upstream"} {
		if rep.Roles[role] == 0 {
			t.Errorf("no goroutine labelled %s: %v", role, rep.Roles)
		}
	}
	if rep.HerdMany.PeakCaddy == 0 {
		t.Error("no Caddy goroutines seen during the herd")
	}
	if rep.Cap.Held > rep.Cap.Cap || rep.Cap.Inserted <= rep.Cap.Cap {
		t.Errorf("cap: %d held of %d inserted, cap %d", rep.Cap.Held, rep.Cap.Inserted, rep.Cap.Cap)
	}
	if len(rep.Steady) != 2 || rep.Steady[1].Conns != cfg.Conns {
		t.Errorf("steady levels: %+v", rep.Steady)
	}
	for _, l := range rep.Steady {
		if len(l.Plain) != cfg.Pairs || len(l.Inj) != cfg.Pairs || l.Requests == 0 {
			t.Errorf("steady %d conns: %d/%d rounds, %d requests", l.Conns, len(l.Plain), len(l.Inj), l.Requests)
		}
	}
	if rep.Hot.Serve.Allocs <= 0 || rep.Hot.Checked == 0 {
		t.Errorf("hot path: %+v", rep.Hot)
	}
	// Item 6: every user signed in as themselves, each cookie alone got its owner's token through the checking
	// stub before and after the load, and the session rounds ran like item 1's.
	s := rep.Session
	if s.Users != cfg.Users || s.SignIn.Failures+s.SignIn.Mismatches != 0 || s.SignIn.PagesRead != min(cfg.SignInPages, cfg.Users) {
		t.Errorf("sign-in: %d users, %+v", s.Users, s.SignIn)
	}
	for _, w := range []struct {
		name string
		r    harness.WarmResult
	}{{"before", s.Before}, {"after", s.After}} {
		if w.r.Requests != cfg.Users || w.r.Failures != 0 || w.r.Mismatches != 0 {
			t.Errorf("session check %s the load: %+v", w.name, w.r)
		}
	}
	if len(s.Levels) != 2 || s.Levels[1].Conns != cfg.Conns {
		t.Errorf("session levels: %+v", s.Levels)
	}
	for _, l := range s.Levels {
		if len(l.Plain) != cfg.Pairs || len(l.Inj) != cfg.Pairs || l.Requests == 0 || l.NotOK != 0 {
			t.Errorf("session %d conns: %d/%d rounds, %d requests, %d not 200", l.Conns, len(l.Plain), len(l.Inj),
				l.Requests, l.NotOK)
		}
	}
	if !s.HotChecked || s.Hot.Checked == 0 || s.Hot.Serve.Allocs <= 0 {
		t.Errorf("session hot path: %+v", s.Hot)
	}
	if e := rep.Expiry; e.Refreshes < e.Users || e.Inj.Near.N+e.Inj.Else.N+e.Plain.Near.N+e.Plain.Else.N != e.Requests ||
		e.Inj.Else.N == 0 || e.Plain.Else.N == 0 {
		t.Errorf("expiry: %d refreshes for %d users; requests classified %+v %+v of %d", e.Refreshes, e.Users,
			e.Inj, e.Plain, e.Requests)
	}

	// Item 7: every size of both paths, and of the null pair, measured at both levels, the proven tokens all
	// remembered, and the million (here thousands of) entries held under load.
	sc := rep.Scale
	if len(sc.Levels) != 2 || len(sc.Levels[0].Kinds) != 6*len(cfg.ScaleSizes) || sc.Proven < sc.Users ||
		sc.Million.Held < cfg.ScaleMillion || len(sc.Million.After.Kinds) != 2 {
		t.Errorf("scale: %d levels, proven %d of %d users, %d entries held of %d", len(sc.Levels), sc.Proven, sc.Users,
			sc.Million.Held, cfg.ScaleMillion)
	}
	for _, l := range sc.Levels {
		for _, k := range l.Kinds {
			// Each kind runs one round a pass, a control next to its own kind, which has the same users.
			measured := k.Control >= 0
			if len(k.Rounds) != cfg.ScalePasses || k.Requests == 0 || k.Bearer && len(k.Verifications) != cfg.ScalePasses ||
				measured && (len(k.Ratios) != cfg.ScalePasses || l.Kinds[k.Control].Users != k.Users) {
				t.Errorf("scale %d conns, %s %d users: %d rounds, %d requests", l.Conns, k.Name, k.Users, len(k.Rounds), k.Requests)
			}
		}
	}

	var out bytes.Buffer
	printTable(&out, rep.Machine, cfg, rep.Rows, rep.Took)
	table := out.String()
	for _, want := range []string{"- date: ", "cores (nproc)", "- go: go1.", "| # | measure", "≥ 0.95", "≤ 0.3 ms",
		"≤ 1 ms", "≤ 1024 B", "1 per user", "rps ratio session/plain", "ServeHTTP session", "RSA verifications per second",
		"session, 100 users' ratio minus", "more cached entries", "null, 100 users: the bearer control against itself"} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q", want)
		}
	}
	for _, item := range []string{"| 1 |", "| 2 |", "| 3 |", "| 4 |", "| 5 |", "| 6 |", "| 7 |"} {
		if !strings.Contains(table, item) {
			t.Errorf("table has no row for item %s", item)
		}
	}
	t.Logf("\n%s", table)
}
