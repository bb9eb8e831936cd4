// Command perrequest turns the bench's per-round CPU profiles into CPU time per request: for each kind of round
// profiled in a directory (go run ./bench -profile DIR), the process's and Caddy's CPU per request, and what the
// functions a request goes through cost, cumulative, in Caddy's role. A kind's rows sit next to its control's, so
// the difference is what the measured route costs, wherever it is spent.
//
//	go run ./bench -only scale -scale-passes 10 -scale-round 2s -profile DIR
//	go run ./bench/perrequest DIR
//	go run ./bench/perrequest DIR bearer-50000   (diff.go: function by function, against its control)
//
// The profiles sample at 100 Hz: over n requests one sample is 10 ms / n, printed with the table.
package main

import (
	"bufio"
	"cmp"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/google/pprof/profile"

	"github.com/tokeninjector/caddy-token-injector/bench/harness"
)

// column is a function a request goes through, cumulative: its own time and its callees'.
type column struct {
	Name string
	Func string // the function's full name, as pprof prints it
}

// The injector's handler, and the reverse_proxy it calls: the handler's own cost is the one minus the other.
const (
	handlerFunc = "github.com/tokeninjector/caddy-token-injector/caddymodule.(*Handler).ServeHTTP"
	proxyFunc   = "github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy.(*Handler).ServeHTTP"
)

var columns = []column{
	{"conn.serve", "net/http.(*conn).serve"},
	{"Server.ServeHTTP", "github.com/caddyserver/caddy/v2/modules/caddyhttp.(*Server).ServeHTTP"},
	{"handler", handlerFunc},
	{"reverse_proxy", proxyFunc},
	{"Validate", "github.com/tokeninjector/caddy-token-injector/internal/callerauth.(*Validator).Validate"},
	{"session find", "github.com/tokeninjector/caddy-token-injector/internal/session.(*Manager).find"},
	{"Engine.Token", "github.com/tokeninjector/caddy-token-injector/internal/acquire.(*Engine).Token"},
}

// The bench's profiles: item 1's rounds, item 6's and item 7's, each with its requests in <prefix>rounds.tsv.
var prefixes = []string{"", "session-", "scale-"}

func main() {
	var err error
	switch len(os.Args) {
	case 2:
		err = summarize(os.Stdout, os.Args[1])
	case 3:
		err = diff(os.Stdout, os.Args[1], os.Args[2]) // diff.go
	default:
		fmt.Fprintln(os.Stderr, "usage: perrequest DIR [KIND]   (a directory written by go run ./bench -profile DIR;"+
			" with KIND, such as bearer-50000, its flat CPU per request against its control's)")
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "perrequest:", err)
		os.Exit(1)
	}
}

// summarize prints a table per item profiled in dir.
func summarize(w io.Writer, dir string) error {
	found := false
	for _, prefix := range prefixes {
		requests, err := readRounds(filepath.Join(dir, prefix+"rounds.tsv"))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		found = true
		if err := table(w, dir, prefix, requests); err != nil {
			return err
		}
	}
	if !found {
		return fmt.Errorf("no rounds.tsv, session-rounds.tsv or scale-rounds.tsv in %s", dir)
	}
	return nil
}

// readRounds sums each kind's requests over its rounds: lines of kind, pair and requests.
func readRounds(path string) (map[string]int, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	requests := map[string]int{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Split(sc.Text(), "\t")
		if len(fields) != 3 {
			return nil, fmt.Errorf("%s: malformed line %q", path, sc.Text())
		}
		n, err := strconv.Atoi(fields[2])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		requests[fields[0]] += n
	}
	return requests, sc.Err()
}

func table(w io.Writer, dir, prefix string, requests map[string]int) error {
	fmt.Fprintf(w, "\n%s (µs per request; Caddy's role unless it says process)\n\n", filepath.Join(dir, prefix+"cpu-*.pprof"))
	head := []string{"kind", "requests", "one sample", "process", "Caddy"}
	for _, c := range columns {
		head = append(head, c.Name)
	}
	head = append(head, "handler's own")
	fmt.Fprintf(w, "| %s |\n|%s\n", strings.Join(head, " | "), strings.Repeat("---|", len(head)))
	for _, k := range slices.SortedFunc(maps.Keys(requests), byKind) {
		c, err := costOf(filepath.Join(dir, prefix+"cpu-"+k+"-*.pprof"))
		if err != nil {
			return err
		}
		n := float64(requests[k])
		per := func(ns int64) string { return fmt.Sprintf("%.2f", float64(ns)/1e3/n) }
		fmt.Fprintf(w, "| %s | %d | %.3f | %s | %s |", k, requests[k], c.period/1e3/n, per(c.process), per(c.caddy))
		for _, col := range columns {
			fmt.Fprintf(w, " %s |", per(c.cum[col.Func]))
		}
		// Only stacks through the handler count in inHandler, so this is never negative.
		fmt.Fprintf(w, " %s |\n", per(c.cum[handlerFunc]-c.inHandler[proxyFunc]))
	}
	return nil
}

// byKind puts each kind after its control: "control-bearer-1000" before "bearer-1000", and item 1's and 6's
// "plain" before the route it controls.
func byKind(a, b string) int {
	key := func(k string) (string, int) {
		if k == "plain" {
			return "", 0
		}
		if base, ok := strings.CutPrefix(k, "control-"); ok {
			return base, 0
		}
		return k, 1
	}
	ab, ar := key(a)
	bb, br := key(b)
	return cmp.Or(strings.Compare(ab, bb), cmp.Compare(ar, br))
}

// cost is one kind's CPU samples, in nanoseconds.
type cost struct {
	process, caddy int64
	cum            map[string]int64 // by function, Caddy's role: each sample counted once per function on its stack
	inHandler      map[string]int64 // the same, for stacks that pass through the injector's handler
	period         float64          // one sample
}

func costOf(pattern string) (cost, error) {
	files, err := filepath.Glob(pattern)
	if err != nil || len(files) == 0 {
		return cost{}, fmt.Errorf("no profiles match %s", pattern)
	}
	c := cost{cum: map[string]int64{}, inHandler: map[string]int64{}}
	for _, f := range files {
		if err := c.add(f); err != nil {
			return c, err
		}
	}
	return c, nil
}

// readCPU reads the CPU profile at path, and which of its sample values is CPU time.
func readCPU(path string) (*profile.Profile, int, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	p, err := profile.Parse(f)
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %w", path, err)
	}
	vi := slices.IndexFunc(p.SampleType, func(t *profile.ValueType) bool { return t.Type == "cpu" })
	if vi < 0 {
		return nil, 0, fmt.Errorf("%s: not a CPU profile", path)
	}
	return p, vi, nil
}

func (c *cost) add(path string) error {
	p, vi, err := readCPU(path)
	if err != nil {
		return err
	}
	c.period = float64(p.Period)
	for _, s := range p.Sample {
		v := s.Value[vi]
		c.process += v
		if !slices.Equal(s.Label[harness.RoleLabel], []string{harness.RoleCaddy}) {
			continue
		}
		c.caddy += v
		seen := map[string]bool{}
		for _, loc := range s.Location {
			for _, l := range loc.Line {
				if l.Function != nil {
					seen[l.Function.Name] = true
				}
			}
		}
		for fn := range seen {
			c.cum[fn] += v
			if seen[handlerFunc] {
				c.inHandler[fn] += v
			}
		}
	}
	return nil
}
