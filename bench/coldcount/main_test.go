package main

import (
	"fmt"
	"maps"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/pprof/profile"

	"github.com/tokeninjector/caddy-token-injector/bench/harness"
	"github.com/tokeninjector/caddy-token-injector/internal/dev/testenv"
)

func TestParseTotalsReadsTheShownEventsByName(t *testing.T) {
	tests := []struct {
		name string
		dump string
		want []float64
		ok   bool
	}{
		{"callgrind's order", "events: Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw\nfn=(1) main\n3 1\ntotals: 900 300 50 2 40 3 1 20 4\n",
			[]float64{900, 300, 50, 2, 40, 3, 1, 20, 4}, true},
		{"another order", "events: DLmr Ir D1mr Dr\ntotals: 7 100 9 30\n", []float64{100, 30, 0, 0, 9, 0, 0, 7, 0}, true},
		{"an event not collected counts none", "events: Ir Dr\ntotals: 100 30\n", []float64{100, 30, 0, 0, 0, 0, 0, 0, 0}, true},
		{"still being written", "events: Ir Dr D1mr DLmr\nfn=(1) main\n", nil, false},
		{"empty", "", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := parseTotals(tt.dump)
			if ok != tt.ok || !slices.Equal(got, tt.want) {
				t.Errorf("parseTotals = %v, %v; want %v, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestReadDumpsAddsUpEachPhaseByItsTrigger(t *testing.T) {
	dumpOf := func(trigger string, ir int) string {
		return fmt.Sprintf("desc: Trigger: Client Request: %s\nevents: Ir Dr D1mr DLmr\ntotals: %d 10 2 1\n", trigger, ir)
	}
	tests := []struct {
		name    string
		dumps   []string
		n       int // the dumps readDumps expects
		want    map[string][]float64
		wantErr string
	}{
		{"two passes", []string{dumpOf("main.bearerHit", 100), dumpOf("main.sessionHit", 50), dumpOf("main.bearerHit", 300)}, 3,
			map[string][]float64{"main.bearerHit": {400, 20, 0, 0, 4, 0, 0, 2, 0}, "main.sessionHit": {50, 10, 0, 0, 2, 0, 0, 1, 0}}, ""},
		{"a dump missing", []string{dumpOf("main.bearerHit", 100)}, 2, nil, "callgrind wrote 1 dumps of 2"},
		{"a dump of no phase", []string{dumpOf("main.other", 100), dumpOf("main.bearerHit", 1)}, 2, nil, "not a dump of one of the phases"},
		{"the final dump, at exit", []string{"desc: Trigger: Program termination\nevents: Ir\ntotals: 5\n"}, 1, nil, "not a dump of one of the phases"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prefix := filepath.Join(t.TempDir(), "callgrind.out")
			for i, d := range tt.dumps {
				if err := os.WriteFile(fmt.Sprintf("%s.%d", prefix, i+1), []byte(d), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			got, err := readDumps(prefix, tt.n, phaseNames(wrappers, func(w wrapper) string { return w.symbol }))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("readDumps = %v, %v; want an error with %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || !maps.EqualFunc(got, tt.want, slices.Equal) {
				t.Errorf("readDumps = %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

// TestCountsBothHandlers runs the command as a user does, on few users, and reads its table.
func TestCountsBothHandlers(t *testing.T) {
	testenv.Integration(t)
	if _, err := exec.LookPath("valgrind"); err != nil {
		testenv.SkipUnlessAllowed(t, "valgrind is not installed (apt-get install valgrind)")
	}
	bin := build(t)
	keep := t.TempDir()
	// 400 users against a 256 KiB last level: their state does not fit, as in the default model.
	out, err := exec.Command(bin, "-users", "400", "-passes", "1", "-ll", "262144", "-keep", keep).CombinedOutput()
	if err != nil {
		t.Fatalf("coldcount: %v\n%s", err, out)
	}
	rows := table(string(out))
	for _, name := range []string{"bearer handler (hit − baseline)", "session handler (hit − baseline)"} {
		r, ok := rows[name]
		if !ok {
			t.Fatalf("no row %q in:\n%s", name, out)
		}
		// A hit proves the caller, finds the downstream token and rewrites the headers: thousands of
		// instructions and a few reads that miss, never none.
		if r[0] < 1000 || r[3] <= 0 {
			t.Errorf("%s: %v instructions, %v LL read misses per request", name, r[0], r[3])
		}
	}
	dumps, _ := filepath.Glob(filepath.Join(keep, "callgrind.out.*"))
	if len(dumps) != len(wrappers) { // one pass: one dump per phase
		t.Errorf("kept %d dumps, want %d", len(dumps), len(wrappers))
	}
}

// TestCountsWholeRequests runs -whole as a user does, on few users: each route costs more than its control, by at
// least a handler's work, and the counted ratios say so.
func TestCountsWholeRequests(t *testing.T) {
	testenv.Integration(t)
	if _, err := exec.LookPath("valgrind"); err != nil {
		testenv.SkipUnlessAllowed(t, "valgrind is not installed (apt-get install valgrind)")
	}
	out, err := exec.Command(build(t), "-whole", "-users", "200", "-passes", "1").CombinedOutput()
	if err != nil {
		t.Fatalf("coldcount -whole: %v\n%s", err, out)
	}
	rows := table(string(out))
	for _, k := range wholeKinds {
		// A request through Caddy and back, both ends in the process: tens of thousands of instructions.
		if r, ok := rows[k.name]; !ok || r[0] < 20000 {
			t.Errorf("%s: %v per request, want a row of at least 20,000 instructions in:\n%s", k.name, r, out)
		}
	}
	for _, name := range []string{"bearer − its control", "session − its control"} {
		if r, ok := rows[name]; !ok || r[0] < 1000 || r[3] <= r[0] {
			t.Errorf("%s: %v per request, want a handler's work (over 1,000 instructions, more cycles than that)", name, r)
		}
	}
	ratio := regexp.MustCompile(`(?m)^(bearer|session|null): counted ratio (\d\.\d+) in instructions, (\d\.\d+) in estimated cycles; ` +
		`user space is (\d+)% of the control's CPU time, so with the kernel's share (\d\.\d+)$`)
	if m := ratio.FindAllStringSubmatch(string(out), -1); len(m) != 3 {
		t.Errorf("want a line of counted ratios for each pair, in:\n%s", out)
	}
	// The same route against itself: even within 2%, where the paths differ by more than 2% in cycles.
	if c, r := rows["plain (null control)"], rows["null"]; len(c) < 1 || len(r) < 1 || math.Abs(r[0]/c[0]-1) > 0.02 {
		t.Errorf("the null pair counted %v and %v instructions per request", c, r)
	}
}

// TestChildRefusesToRunOutsideCallgrind: the child's client requests do nothing outside Valgrind, and it says so
// rather than count nothing.
func TestChildRefusesToRunOutsideCallgrind(t *testing.T) {
	cmd := exec.Command(build(t), "-users", "400")
	cmd.Env = append(cmd.Environ(), childEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "the child counts only under callgrind") {
		t.Errorf("the child outside Valgrind: %v\n%s", err, out)
	}
}

// build builds the command into a temporary folder.
func build(t *testing.T) string {
	bin := filepath.Join(t.TempDir(), "coldcount")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// table reads printCounts' rows: the name, then the four counts.
func table(out string) map[string][]float64 {
	rows := map[string][]float64{}
	row := regexp.MustCompile(`^\| ([^|]+) \|(( [-0-9.]+ \|){4})$`)
	for line := range strings.Lines(out) {
		m := row.FindStringSubmatch(strings.TrimSpace(line))
		if m == nil {
			continue
		}
		var v []float64
		for _, f := range strings.Split(strings.Trim(m[2], " |"), "|") {
			n, _ := strconv.ParseFloat(strings.TrimSpace(f), 64)
			v = append(v, n)
		}
		rows[m[1]] = v
	}
	return rows
}

func TestPrintTimedGivesEachPairsMedianAndRange(t *testing.T) {
	ms := func(v ...int) []cpuSplit {
		out := make([]cpuSplit, len(v))
		for i, x := range v {
			out[i] = cpuSplit{user: time.Duration(x) * time.Millisecond / 2, system: time.Duration(x) * time.Millisecond / 2}
		}
		return out
	}
	cpu := map[string][]cpuSplit{
		"whole.plain": ms(100, 100, 100), "whole.bearer": ms(125, 100, 110),
		"whole.sessionControl": ms(90, 90, 90), "whole.session": ms(90, 90, 90),
		"whole.nullControl": ms(100, 100, 100), "whole.null": ms(100, 100, 100),
	}
	var out strings.Builder
	printTimed(&out, cpu, 1000)
	for _, want := range []string{
		"3 passes of 1000 requests",
		"| bearer | 100.0 | 111.7 | 0.909 | 0.800 | 1.000 |", // ratios 0.8, 1.0, 0.909: the middle one
		"| session | 90.0 | 90.0 | 1.000 | 1.000 | 1.000 |",
		"| null | 100.0 | 100.0 | 1.000 | 1.000 | 1.000 |",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("printTimed wrote\n%s\nwithout %q", out.String(), want)
		}
	}
}

// A profiled run leaves one CPU profile per kind and pass, and nothing else, named so that a shell glob takes one
// kind's passes for pprof to merge.
func TestTimeWholeProfilesEachKindsPassesApart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "profiles") // made by timeWhole
	const users, passes = 4, 2
	cpu, err := timeWhole(users, passes, dir, harness.EnvOptions{UsersA: users})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range wholeKinds {
		if got := len(cpu[k.phase]); got != passes {
			t.Errorf("%s: %d timed passes, want %d", k.phase, got, passes)
		}
		for pass := range passes {
			name := filepath.Join(dir, fmt.Sprintf("%s.%03d.pprof", k.phase, pass))
			f, err := os.Open(name)
			if err != nil {
				t.Fatalf("no profile for %s pass %d: %v", k.phase, pass, err)
			}
			p, err := profile.Parse(f)
			f.Close()
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if p.DurationNanos <= 0 || len(p.SampleType) == 0 || p.SampleType[len(p.SampleType)-1].Unit != "nanoseconds" {
				t.Errorf("%s is not a CPU profile of a span: duration %d ns, sample types %v", name, p.DurationNanos, p.SampleType)
			}
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != passes*len(wholeKinds) {
		t.Errorf("%d files in the profile folder, want %d", len(entries), passes*len(wholeKinds))
	}
}

func TestStartProfileWithoutAFolderLeavesTheProfilerFree(t *testing.T) {
	stop, err := startProfile("", "whole.bearer", 0)
	if err != nil {
		t.Fatal(err)
	}
	// A profile left running would make the next StartCPUProfile fail.
	stop()
	f, err := os.Create(filepath.Join(t.TempDir(), "p"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := pprof.StartCPUProfile(f); err != nil {
		t.Fatalf("startProfile without a folder left the profiler running: %v", err)
	}
	pprof.StopCPUProfile()
}
