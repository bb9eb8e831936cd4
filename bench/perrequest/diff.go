package main

import (
	"cmp"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"slices"
	"strings"

	"github.com/tokeninjector/caddy-token-injector/bench/harness"
)

// The diff mode, perrequest DIR KIND: where a measured kind's extra CPU per request goes, function by function.
// A kind's route and its control run the same code outside the handler, so a function that costs more per request
// on the measured route is either the handler's work or what the handler makes others do (a cold downstream token
// the transport reads, say). Flat time (the function's own, not its callees') adds up to the process's, so the
// rows of a diff add up to the difference of the two routes.

// flatCost is one kind's flat CPU, in nanoseconds, by role and function.
type flatCost struct {
	byFunc map[flatKey]int64
	total  int64
}

type flatKey struct{ role, fn string }

// diffRows is how many functions a diff prints, largest difference first.
const diffRows = 30

// diff prints kind's flat CPU per request against its control's, for the profiles of the item whose rounds name
// kind.
func diff(w io.Writer, dir, kind string) error {
	control := "control-" + kind
	for _, prefix := range prefixes {
		requests, err := readRounds(filepath.Join(dir, prefix+"rounds.tsv"))
		if err != nil || requests[kind] == 0 || requests[control] == 0 {
			continue
		}
		m, err := flatOf(filepath.Join(dir, prefix+"cpu-"+kind+"-*.pprof"))
		if err != nil {
			return err
		}
		c, err := flatOf(filepath.Join(dir, prefix+"cpu-"+control+"-*.pprof"))
		if err != nil {
			return err
		}
		printDiff(w, kind, m, c, float64(requests[kind]), float64(requests[control]))
		return nil
	}
	return fmt.Errorf("no rounds of both %s and %s in %s", kind, control, dir)
}

func printDiff(w io.Writer, kind string, m, c flatCost, nm, nc float64) {
	type row struct {
		key        flatKey
		mine, ctrl float64
	}
	keys := map[flatKey]bool{}
	for k := range m.byFunc {
		keys[k] = true
	}
	for k := range c.byFunc {
		keys[k] = true
	}
	rows := make([]row, 0, len(keys))
	for k := range keys {
		rows = append(rows, row{k, float64(m.byFunc[k]) / 1e3 / nm, float64(c.byFunc[k]) / 1e3 / nc})
	}
	slices.SortFunc(rows, func(a, b row) int {
		return cmp.Or(cmp.Compare(math.Abs(b.mine-b.ctrl), math.Abs(a.mine-a.ctrl)), strings.Compare(a.key.fn, b.key.fn))
	})
	fmt.Fprintf(w, "\n%s against its control: flat µs per request, process %.2f against %.2f (%+.2f)\n\n",
		kind, float64(m.total)/1e3/nm, float64(c.total)/1e3/nc, float64(m.total)/1e3/nm-float64(c.total)/1e3/nc)
	fmt.Fprintln(w, "| role | function | measured | control | difference |\n|---|---|---|---|---|")
	for _, r := range rows[:min(diffRows, len(rows))] {
		fmt.Fprintf(w, "| %s | %s | %.2f | %.2f | %+.2f |\n", r.key.role, r.key.fn, r.mine, r.ctrl, r.mine-r.ctrl)
	}
}

// flatOf sums the flat CPU of the profiles matching pattern: each sample goes to its leaf function (the innermost
// of an inlined frame) and its role label ("other" without one).
func flatOf(pattern string) (flatCost, error) {
	files, err := filepath.Glob(pattern)
	if err != nil || len(files) == 0 {
		return flatCost{}, fmt.Errorf("no profiles match %s", pattern)
	}
	fc := flatCost{byFunc: map[flatKey]int64{}}
	for _, path := range files {
		if err := fc.add(path); err != nil {
			return fc, err
		}
	}
	return fc, nil
}

func (fc *flatCost) add(path string) error {
	p, vi, err := readCPU(path)
	if err != nil {
		return err
	}
	for _, s := range p.Sample {
		k := flatKey{role: "other", fn: "?"}
		if r := s.Label[harness.RoleLabel]; len(r) == 1 {
			k.role = r[0]
		}
		if len(s.Location) > 0 && len(s.Location[0].Line) > 0 && s.Location[0].Line[0].Function != nil {
			k.fn = s.Location[0].Line[0].Function.Name
		}
		fc.byFunc[k] += s.Value[vi]
		fc.total += s.Value[vi]
	}
	return nil
}
