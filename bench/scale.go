package main

import (
	"fmt"
	"runtime"
	"slices"
	"sync/atomic"
	"time"

	"github.com/tokeninjector/caddy-token-injector/bench/harness"
	"github.com/tokeninjector/caddy-token-injector/bench/loadgen"
)

// Item 7, scale: the proxy's cost at 1k, 10k and 50k active users on both paths, and with a million cached
// entries. Every kind of request is measured in the same passes: a pass runs one round of each kind, in an order
// reversed from one pass to the next, and each kind's ratio is its rps over its control's in the same pass. Each
// kind has a control of its own over the same users. The bearer control is /plain/ with the caller's token; the
// session control is /sctl/, the cookie in and a fixed Authorization header of the session route's size out.

// scaleKind is one kind of request of the scale passes.
type scaleKind struct {
	Name    string // "plain (bearer)", "bearer", "plain (session)", "session"
	Users   int
	Control int // index of the kind this one is compared with; -1 for a control
	Bearer  bool
	Null    bool   // the control paired with itself (Config.ScaleNull)
	addr    string // the route's own server
	reqs    [][]byte
	next    atomic.Int64 // the next user: rounds go on where the last one stopped, so every user is reached
}

// slug names a measured kind in file names: "bearer-50000", "session-1000".
func (k *scaleKind) slug() string { return fmt.Sprintf("%s-%d", k.Name, k.Users) }

// scaleKindResult is a kind's measurements over the passes.
type scaleKindResult struct {
	Name     string
	Users    int
	Control  int
	Bearer   bool
	Null     bool
	Rounds   []roundStats
	Ratios   []float64       // per pass, against the control
	AddedP50 []time.Duration // per pass
	AddedP99 []time.Duration
	// Verifications is the RSA signature checks per second during this kind's rounds (bearer kinds).
	Verifications []float64
	NotOK         int
	Requests      int
}

// scaleLevel is the passes at one number of connections.
type scaleLevel struct {
	Repeat int // which repetition of the measurement (Config.ScaleRepeat) after the one setup
	Conns  int
	Kinds  []scaleKindResult
}

// scaleResult is item 7.
type scaleResult struct {
	Users                      int // the largest size: users minted, cached and signed in
	MintTook, WarmTook         time.Duration
	SessionsTook, OpenTook     time.Duration
	Warm, SessionCheck         harness.WarmResult // through the checking stub: the OBO sample; a sample of sessions
	Proved                     harness.WarmResult // every caller token once through /inj/
	Seeded                     int                // users whose downstream token is a copy (SeedTokens)
	Proven                     int                // tokens in the proven-token cache after the warm-up
	Control                    controlBytes       // the session control's Authorization header against the users'
	ProvenBytes                int64
	Levels                     []scaleLevel
	Million                    millionResult
	UpstreamReq, MeasuredTotal int64
}

func runScale(env *harness.Env, cfg Config, rep *Report, step func(string, ...any)) error {
	res := &rep.Scale
	n := slices.Max(cfg.ScaleSizes)
	res.Users = n
	users, oids := harness.Users(cfg.scaleFrom(), n)
	step("scale: minting %d caller tokens", n)
	t0 := time.Now()
	tokens, err := env.A.Mint(users)
	if err != nil {
		return err
	}
	res.MintTook = time.Since(t0)
	// One user in oboEvery gets their token by On-Behalf-Of through the token-checking stub, which proves it is
	// their own; the others get a copy of one (SeedTokens, which proves each caller token to key its copy as a
	// flight would). Then every user's request goes once through /inj/, which must answer 200.
	sample, sampleOIDs := everyNth(tokens, oids, cfg.ScaleOBOEvery)
	step("scale: %d users' downstream tokens by OBO through the checking stub (minted in %s), the other %d seeded",
		len(sample), res.MintTook.Round(time.Millisecond), n-len(sample))
	t0 = time.Now()
	if res.Warm, err = env.Warm(harness.PathCheck, sample, sampleOIDs); err != nil {
		return err
	}
	if res.Seeded, err = env.SeedTokens(harness.CaptureInj, sampleOIDs[0], tokens); err != nil {
		return err
	}
	if res.Proved, err = env.WarmEach(harness.PathInj, tokens, loadgen.GET); err != nil {
		return err
	}
	res.WarmTook = time.Since(t0)
	st, err := harness.CallerStats(harness.CaptureInj)
	if err != nil {
		return err
	}
	res.Proven, res.ProvenBytes = st.Tokens, st.Bytes
	step("scale: %d sessions, each cookie opened once through /sess/ and checked through /scheck/", n)
	t0 = time.Now()
	cookies, err := env.CreateSessions(harness.CaptureSess, users)
	if err != nil {
		return err
	}
	res.SessionsTook = time.Since(t0)
	// Before the cookies are opened: the control's reload gives every route new handlers, which have opened none.
	if res.Control, err = setSessionControl(env, harness.CaptureSess, oids); err != nil {
		return err
	}
	t0 = time.Now()
	if _, err := env.WarmEach(harness.PathSess, cookies, loadgen.GETCookie); err != nil {
		return err
	}
	res.OpenTook = time.Since(t0)
	sc, scOIDs := everyNth(cookies, oids, cfg.ScaleOBOEvery) // the users whose own token was obtained
	if res.SessionCheck, err = env.WarmSessions(harness.PathSessCheck, sc, scOIDs); err != nil {
		return err
	}
	kinds := scaleKinds(env, cfg.ScaleSizes, tokens, cookies, cfg.ScaleNull)
	before := env.Trivial.Requests()
	for rep := range max(cfg.ScaleRepeat, 1) {
		if err := scaleLevels(env, cfg, kinds, rep, res, step); err != nil {
			return err
		}
	}
	res.UpstreamReq = env.Trivial.Requests() - before
	if cfg.ScaleMillion > 0 {
		if res.Million, err = millionUnderLoad(env, cfg, kinds, step); err != nil {
			return err
		}
	}
	rep.Rows = append(rep.Rows, res.rows(cfg)...)
	return nil
}

// scaleLevels measures every kind at one connection and at cfg.Conns, profiling the loaded level of the first
// repetition when asked.
func scaleLevels(env *harness.Env, cfg Config, kinds []*scaleKind, rep int, res *scaleResult, step func(string, ...any)) error {
	var err error
	for _, conns := range []int{1, cfg.Conns} {
		step("scale (repetition %d): %d connection(s), %d passes of %d kinds, each next to its control, × %s", rep+1, conns,
			cfg.ScalePasses, len(kinds)/2, cfg.ScaleRound)
		stop, profile := func() error { return nil }, ""
		if conns == cfg.Conns && cfg.Profile != "" && rep == 0 {
			if stop, err = startProfiles(cfg.Profile, "scale-"); err != nil {
				return err
			}
			profile = cfg.Profile
		}
		lvl, err := scalePasses(env, kinds, conns, cfg.ScalePasses, cfg.ScaleRound, profile)
		if perr := stop(); err == nil {
			err = perr
		}
		if err != nil {
			return err
		}
		lvl.Repeat = rep
		res.Levels = append(res.Levels, lvl)
		for _, k := range lvl.Kinds {
			res.MeasuredTotal += int64(k.Requests)
		}
	}
	return nil
}

func everyNth(a, b []string, k int) ([]string, []string) {
	var x, y []string
	for i := 0; i < len(a); i += k {
		x, y = append(x, a[i]), append(y, b[i])
	}
	return x, y
}

// scaleKinds builds the requests: for each path and size, a control over the same users and the path's kind, each
// kind on its route's own server. A control over the same users reads the same request bytes and walks as many
// of them: with one control over all 50,000 users, the 1k kinds read their 1,000 requests warm where their
// control read cold ones, and their ratios came out a few percent too high. With null, a second bearer control
// at each size is measured against the first: the same route, users and bytes.
func scaleKinds(env *harness.Env, sizes []int, tokens, cookies []string, null bool) []*scaleKind {
	// on sends k's users' requests to path's own server.
	on := func(k *scaleKind, path string, creds []string, get func(host, path, cred string) []byte) *scaleKind {
		k.addr, k.reqs = env.AddrOf(path), env.Requests(path, creds, get)
		return k
	}
	var kinds []*scaleKind
	for _, s := range sizes {
		c := len(kinds)
		kinds = append(kinds,
			on(&scaleKind{Name: "plain (bearer control)", Users: s, Control: -1}, harness.PathPlain, tokens[:s], loadgen.GET),
			on(&scaleKind{Name: "bearer", Users: s, Control: c, Bearer: true}, harness.PathInj, tokens[:s], loadgen.GET))
	}
	for _, s := range sizes {
		c := len(kinds)
		kinds = append(kinds,
			on(&scaleKind{Name: "plain (session control)", Users: s, Control: -1}, harness.PathSessControl, cookies[:s], loadgen.GETCookie),
			on(&scaleKind{Name: "session", Users: s, Control: c}, harness.PathSess, cookies[:s], loadgen.GETCookie))
	}
	if !null {
		return kinds
	}
	for _, s := range sizes {
		c := len(kinds)
		kinds = append(kinds,
			on(&scaleKind{Name: "plain (null control)", Users: s, Control: -1}, harness.PathPlain, tokens[:s], loadgen.GET),
			on(&scaleKind{Name: "null", Users: s, Control: c, Null: true}, harness.PathPlain, tokens[:s], loadgen.GET))
	}
	return kinds
}

// scalePasses runs one unmeasured pass of short rounds, then passes measured passes. In a pass each measured kind
// runs next to a round of its control (control first in even passes, second in odd ones), right after a forced
// garbage collection: with 50,000 users' state the heap is hundreds of MiB, and a collection cycle landing in one
// round of a pair and not the other moved single ratios by ±30% when pairs were seconds apart.
//
// With profile set, each measured round is CPU-profiled into a file of its kind there (profile.go).
func scalePasses(env *harness.Env, kinds []*scaleKind, conns, passes int, round time.Duration, profile string) (scaleLevel, error) {
	lvl := scaleLevel{Conns: conns, Kinds: make([]scaleKindResult, len(kinds))}
	for i, k := range kinds {
		lvl.Kinds[i] = scaleKindResult{Name: k.Name, Users: k.Users, Control: k.Control, Bearer: k.Bearer, Null: k.Null}
	}
	for _, k := range kinds {
		if _, _, err := scaleRound(env, k, conns, round/4); err != nil {
			return lvl, err
		}
	}
	for p := range passes {
		var order []int
		for i, k := range kinds {
			if k.Control >= 0 {
				order = append(order, i)
			}
		}
		if p%2 == 1 {
			slices.Reverse(order)
		}
		for _, i := range order {
			pair := [2]int{kinds[i].Control, i}
			if p%2 == 1 {
				pair[0], pair[1] = pair[1], pair[0]
			}
			runtime.GC()
			var got [2]roundStats
			for j, k := range pair {
				name := kinds[i].slug() // the control's rounds are named for the kind they are paired with
				if k != i {
					name = "control-" + name
				}
				stopProfile, err := profileRound(profile, "scale-", name, p)
				if err != nil {
					return lvl, err
				}
				st, verif, err := scaleRound(env, kinds[k], conns, round)
				if perr := stopProfile(st.N); err == nil {
					err = perr
				}
				if err != nil {
					return lvl, err
				}
				kr := &lvl.Kinds[k]
				kr.Rounds = append(kr.Rounds, st)
				kr.Requests += st.N
				kr.NotOK += st.NotOK
				if kinds[k].Bearer {
					kr.Verifications = append(kr.Verifications, verif)
				}
				got[j] = st
			}
			c, m := got[0], got[1]
			if p%2 == 1 {
				c, m = m, c
			}
			kr := &lvl.Kinds[i]
			kr.Ratios = append(kr.Ratios, m.RPS/c.RPS)
			kr.AddedP50 = append(kr.AddedP50, m.P50-c.P50)
			kr.AddedP99 = append(kr.AddedP99, m.P99-c.P99)
		}
	}
	return lvl, nil
}

// scaleRound is one round of k, and the RSA verifications per second of the bearer registration during it.
func scaleRound(env *harness.Env, k *scaleKind, conns int, d time.Duration) (roundStats, float64, error) {
	v0, err := harness.CallerStats(harness.CaptureInj)
	if err != nil {
		return roundStats{}, 0, err
	}
	n := int64(len(k.reqs))
	st, err := runRound(k.addr, conns, d, func(int, int) []byte { return k.reqs[(k.next.Add(1)-1)%n] })
	if err != nil {
		return st, 0, err
	}
	v1, err := harness.CallerStats(harness.CaptureInj)
	return st, float64(v1.Verifications-v0.Verifications) / d.Seconds(), err
}
