// Command coldcount counts what a cache hit costs the handler when the user's state is cold, in instructions and
// simulated cache misses rather than seconds. BenchmarkColdHit prices the same requests by the clock, and on a
// shared host its figure moves by more between two runs of one build than a layout change can save. These counts
// do not move with the host's load: callgrind runs the hot paths on a simulated cache and counts what they read.
//
//	go run ./bench/coldcount                     (needs valgrind: apt-get install valgrind)
//	go run ./bench/coldcount -users 2000 -passes 3 -ll 1048576
//
// It is a scaled model of the scale item's 50,000 users. Their state (about 5 KB each, 250 MB) is eight times the
// host's 32 MiB L3. Here 2,000 users (about 10 MB) meet a simulated last level of 1 MiB. Each user comes once per
// pass, in a scattered order, as in BenchmarkColdHit, so a last-level miss here is a miss to main memory there
// (about 0.1 µs on this host). The shared structures shrink with the users, and fit that level at both scales.
//
// Each request is counted in four wrappers: a bearer hit, its baseline (the same request built, next called
// without the handler), a session hit and its baseline. The handler's cost is a hit minus its baseline, as in the
// Go benchmarks. What next does with the injected token (the transport's copy of it) is not counted here.
//
// With -whole it counts whole requests instead, as the scale item times them: over loopback through Caddy, each
// route against its control in the same process with the same bytes, and the bearer control against itself
// (whole.go). The counted ratio is the scale item's rps ratio at one connection for the process's user space; the
// kernel's share, which callgrind does not see, is timed in a second run of the same requests without it.
//
//	go run ./bench/coldcount -whole -users 2000 -passes 1
//
// With -timed as well it counts nothing and runs no valgrind: it times the same requests' CPU (user and kernel)
// pass by pass and prints each pair's ratio, its median and range (timed.go).
//
//	GOMAXPROCS=1 go run ./bench/coldcount -whole -timed -users 2000 -passes 20
//
// With -profiles DIR it profiles each kind's passes as well, a file per pass, so that a route's real-time profile
// can be set against its control's, function by function (BENCHMARKS.md, "Issue 13, twentieth stop"):
//
//	GOMAXPROCS=1 go run ./bench/coldcount -whole -timed -passes 150 -profiles /tmp/prof
//	go tool pprof -proto /tmp/prof/whole.nullControl.*.pprof > control.pb.gz
//	go tool pprof -proto /tmp/prof/whole.bearer.*.pprof > bearer.pb.gz
//	go tool pprof -top -diff_base control.pb.gz bearer.pb.gz
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/tokeninjector/caddy-token-injector/bench/harness"
)

// childEnv marks the process callgrind runs, which serves the requests; the parent runs it and reads its counts.
const childEnv = "COLDCOUNT_CHILD"

func main() {
	users := flag.Int("users", 2000, "signed-in users, each with a proven token and a session")
	passes := flag.Int("passes", 3, "scattered passes over the users, after one in their order")
	ll := flag.Int("ll", 1<<20, "the simulated last-level cache's size in bytes (16-way, 64 B lines)")
	keep := flag.String("keep", "", "keep callgrind's dumps in this folder, one per phase, for callgrind_annotate")
	callerScopes := flag.String("caller-scopes", "", "the bearer route's caller_scopes, comma-separated (its tokens carry access_as_user)")
	whole := flag.Bool("whole", false, "count whole requests through Caddy over loopback, each route against its control")
	timed := flag.Bool("timed", false, "with -whole: time the requests' CPU without callgrind, pass by pass, and count nothing")
	profiles := flag.String("profiles", "", "with -timed: profile each kind's passes into this folder, for pprof -diff_base")
	flag.Parse()
	if *users < 2 || *users%7919 == 0 || *passes < 1 {
		fmt.Fprintln(os.Stderr, "coldcount: -users must be at least 2 and not a multiple of 7919, -passes at least 1")
		os.Exit(2)
	}
	opts := harness.EnvOptions{UsersA: *users}
	if *callerScopes != "" {
		opts.CallerScopes = strings.Split(*callerScopes, ",")
	}
	var err error
	switch {
	case *timed && !*whole:
		err = errors.New("-timed times -whole's requests: give both")
	case *timed:
		err = timeOnly(*users, *passes, *profiles, opts)
	case os.Getenv(childEnv) == "":
		err = count(*users, *passes, *ll, *keep, *whole, opts)
	case !underCallgrind():
		err = errors.New("the child counts only under callgrind, on amd64 (run coldcount without " + childEnv + ")")
	case *whole:
		err = serveWhole(*users, *passes, opts)
	default:
		err = serve(*users, *passes, opts)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "coldcount:", err)
		os.Exit(1)
	}
}

// count runs this program under callgrind, which the child has dump its counts after each phase, and prints them
// per request.
func count(users, passes, ll int, keep string, whole bool, opts harness.EnvOptions) error {
	if _, err := exec.LookPath("valgrind"); err != nil {
		return fmt.Errorf("valgrind is not installed (apt-get install valgrind): %w", err)
	}
	dir := keep
	if dir == "" {
		tmp, err := os.MkdirTemp("", "coldcount-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	prefix, logFile := filepath.Join(dir, "callgrind.out"), filepath.Join(dir, "valgrind.log")
	// Setup runs uninstrumented, several times faster; the child turns instrumentation on when it is done. The
	// caches are named, not read off the host: a VM's CPUID can report anything (a 508 MiB L3 here, 2026-12-04).
	args := []string{"--tool=callgrind", "--instr-atstart=no", "--cache-sim=yes", "--I1=32768,8,64", "--D1=49152,12,64", fmt.Sprintf("--LL=%d,16,64", ll),
		"--callgrind-out-file=" + prefix, "--log-file=" + logFile}
	args = append(append(args, self), os.Args[1:]...) // the child reads the same flags
	fmt.Printf("coldcount: %d users, %d scattered passes, I1 32 KiB, D1 48 KiB, LL %d KiB (this takes a few minutes)\n",
		users, passes, ll>>10)
	cmd := exec.Command("valgrind", args...)
	// Go preempts goroutines with signals, which callgrind cannot follow. With whole requests, one P runs the
	// client, the servers and the upstream in turn, so no thread spins looking for work between them.
	// Valgrind's simulated CPU can advertise RDTSCP on a host whose CPUID hides it (a VM), and then not decode
	// it: the runtime's clock reads take LFENCE; RDTSC instead, which every host runs. (golang.org/x/sys/cpu,
	// which reads GODEBUG too, prints that it knows no such feature; it is harmless.)
	cmd.Env = append(os.Environ(), childEnv+"=1", "GODEBUG=asyncpreemptoff=1,cpu.rdtscp=off")
	if whole {
		cmd.Env = append(cmd.Env, "GOMAXPROCS=1")
	}
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		if text, rerr := os.ReadFile(logFile); rerr == nil {
			os.Stderr.Write(text[max(0, len(text)-4000):])
		}
		return fmt.Errorf("valgrind: %w", err)
	}
	if !whole {
		totals, err := readDumps(prefix, passes*len(wrappers), phaseNames(wrappers, func(w wrapper) string { return w.symbol }))
		if err != nil {
			return err
		}
		return printCounts(os.Stdout, totals, users*passes)
	}
	counts, err := readDumps(prefix, passes*len(wholeKinds), phaseNames(wholeKinds, func(k wholeKind) string { return k.phase }))
	if err != nil {
		return err
	}
	fmt.Println("coldcount: the same requests again without callgrind, for the kernel's share of the CPU")
	// The kernel accounts CPU time by the tick on many systems: enough requests that each kind runs for seconds.
	cpu, err := timeWhole(users, max(passes, timedRequests/users), "", opts)
	if err != nil {
		return err
	}
	printWhole(os.Stdout, counts, cpu, users*passes)
	printTimed(os.Stdout, cpu, users)
	return nil
}

// timeOnly times -whole's requests without callgrind and prints each pair's ratio pass by pass.
func timeOnly(users, passes int, profiles string, opts harness.EnvOptions) error {
	fmt.Printf("coldcount: %d users, %d passes of each kind's requests, timed (GOMAXPROCS %d)\n", users, passes,
		runtime.GOMAXPROCS(0))
	cpu, err := timeWhole(users, passes, profiles, opts)
	if err == nil {
		printTimed(os.Stdout, cpu, users)
	}
	return err
}

// serve sets up the users' state and sends each kind of request through its wrapper, users*passes times. It has
// callgrind zero its counts as each counted phase starts and dump them as it ends, so each dump holds one phase.
func serve(users, passes int, opts harness.EnvOptions) error {
	// The servers are not stopped: the process ends when the passes are done. Stopping them under callgrind
	// 3.19 ran into its signal tracking about one run in six (an assertion in vgCallgrind_post_signal, after the
	// last dump), and that failed the run.
	env, err := harness.StartEnv(opts)
	if err != nil {
		return err
	}
	defer env.RemoveDir()
	bearer, sess, err := hotPaths(env, users)
	if err != nil {
		return err
	}
	clients := map[string]*harness.Client{}
	for _, w := range wrappers {
		p := bearer
		if w.session {
			p = sess
		}
		clients[w.symbol] = p.NewClient()
	}
	// No collection runs during the counted passes, so none is counted in a wrapper. The heap they leave is a
	// few tens of MB.
	runtime.GC()
	debug.SetGCPercent(-1)
	startInstrumentation()
	// A pass uncounted first, so the simulated caches hold what a running server's do: the code, the shared
	// structures, and no user's state.
	for pass := range passes + 1 {
		for _, w := range wrappers {
			zeroCounts()
			for range users {
				if err := w.serve(clients[w.symbol]); err != nil {
					return err
				}
			}
			if pass > 0 {
				dumpCounts(w.symbol)
			}
		}
	}
	return nil
}

// hotPaths makes every user's state as BenchmarkColdHit does (a proven token, a cached downstream token, a
// session and its opened cookie, made in the users' order) and returns hot paths that take them scattered.
func hotPaths(env *harness.Env, n int) (bearer, sess *harness.HotPath, err error) {
	users, oids := harness.Users(0, n)
	tokens, err := env.A.Mint(users)
	if err != nil {
		return nil, nil, err
	}
	if _, err := env.Warm(harness.PathCheck, tokens[:1], oids[:1]); err != nil {
		return nil, nil, err
	}
	if _, err := env.SeedTokens(harness.CaptureInj, oids[0], tokens); err != nil {
		return nil, nil, err
	}
	cookies, err := env.CreateSessions(harness.CaptureSess, users)
	if err != nil {
		return nil, nil, err
	}
	if bearer, err = inOrder(harness.NewHotPath(harness.CaptureInj, tokens, oids)); err != nil {
		return nil, nil, err
	}
	if sess, err = inOrder(env.NewSessionHotPath(harness.CaptureSess, cookies, oids)); err != nil {
		return nil, nil, err
	}
	if bearer, err = checked(harness.NewHotPath(harness.CaptureInj, scatter(tokens), scatter(oids))); err != nil {
		return nil, nil, err
	}
	sess, err = checked(env.NewSessionHotPath(harness.CaptureSess, scatter(cookies), scatter(oids)))
	return bearer, sess, err
}

// inOrder sends every user's request through p once, so each token is proven and each cookie opened.
func inOrder(p *harness.HotPath, err error) (*harness.HotPath, error) {
	if err != nil {
		return nil, err
	}
	c := p.NewClient()
	for range p.Users() {
		if err := c.Serve(); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// checked returns p once its first request was served as its user's own. (Every user is served a copy of user
// 0's downstream token, and the scattered order starts with user 0.)
func checked(p *harness.HotPath, err error) (*harness.HotPath, error) {
	if err == nil {
		err = p.NewClient().Check(0)
	}
	return p, err
}

// scatter reorders s by a prime stride, so consecutive requests are for users made far apart.
func scatter(s []string) []string {
	const stride = 7919
	out := make([]string, len(s))
	for i := range s {
		out[i] = s[i*stride%len(s)]
	}
	return out
}
