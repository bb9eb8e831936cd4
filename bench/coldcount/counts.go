package main

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/tokeninjector/caddy-token-injector/bench/harness"
)

// The four phases' wrappers, which keep the hit and baseline apart in a profile of the output file.
//
//go:noinline
func bearerHit(c *harness.Client) error { return c.Serve() }

//go:noinline
func bearerBaseline(c *harness.Client) error { return c.Baseline() }

//go:noinline
func sessionHit(c *harness.Client) error { return c.Serve() }

//go:noinline
func sessionBaseline(c *harness.Client) error { return c.Baseline() }

// wrapper is one of them: what it serves, and its name as callgrind knows it.
type wrapper struct {
	name, symbol string
	session      bool
	serve        func(*harness.Client) error
}

var wrappers = []wrapper{
	{"bearer baseline", "main.bearerBaseline", false, bearerBaseline},
	{"bearer hit", "main.bearerHit", false, bearerHit},
	{"session baseline", "main.sessionBaseline", true, sessionBaseline},
	{"session hit", "main.sessionHit", true, sessionHit},
}

// phaseNames are items' names as their dumps' triggers give them.
func phaseNames[T any](items []T, name func(T) string) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = name(it)
	}
	return out
}

// events are the counts read, in callgrind's names and order: instructions, data reads and writes, and the misses
// of each in the first level (I1, D1) and the last (LL).
var events = []string{"Ir", "Dr", "Dw", "I1mr", "D1mr", "D1mw", "ILmr", "DLmr", "DLmw"}

// The events' indexes.
const (
	ir, dr, dw, i1mr, d1mr, d1mw, ilmr, dlmr, dlmw = 0, 1, 2, 3, 4, 5, 6, 7, 8
)

// readDumps reads callgrind's first n dumps, prefix.1 to prefix.n, and adds up each phase's counts: a dump names
// its phase in its trigger, as the child asked for it, and the phase must be one of phases.
func readDumps(prefix string, n int, phases []string) (map[string][]float64, error) {
	totals := map[string][]float64{}
	for i := 1; i <= n; i++ {
		file := fmt.Sprintf("%s.%d", prefix, i)
		text, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("callgrind wrote %d dumps of %d: %w", i-1, n, err)
		}
		symbol := parseTrigger(string(text))
		counts, ok := parseTotals(string(text))
		if !slices.Contains(phases, symbol) || !ok {
			return nil, fmt.Errorf("%s is not a dump of one of the phases", file)
		}
		if totals[symbol] == nil {
			totals[symbol] = make([]float64, len(events))
		}
		for j, c := range counts {
			totals[symbol][j] += c
		}
	}
	return totals, nil
}

// parseTrigger reads what a dump's client request named ("desc: Trigger: Client Request: main.bearerHit"), or ""
// for a dump no client request made.
func parseTrigger(text string) string {
	for line := range strings.Lines(text) {
		if v, ok := strings.CutPrefix(line, "desc: Trigger: Client Request: "); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// parseTotals reads a callgrind output file's "events:" and "totals:" lines and returns the totals of events.
func parseTotals(text string) ([]float64, bool) {
	var names, values []string
	for line := range strings.Lines(text) {
		if v, ok := strings.CutPrefix(line, "events:"); ok {
			names = strings.Fields(v)
		}
		if v, ok := strings.CutPrefix(line, "totals:"); ok {
			values = strings.Fields(v)
		}
	}
	if names == nil || values == nil {
		return nil, false
	}
	counts := make([]float64, len(events))
	for i, e := range events {
		for j, n := range names {
			if n == e && j < len(values) {
				counts[i], _ = strconv.ParseFloat(values[j], 64)
			}
		}
	}
	return counts, true
}

// printCounts prints each wrapper's counts per request, and each handler's: its hit minus its baseline.
func printCounts(w io.Writer, totals map[string][]float64, requests int) error {
	per := func(symbol string) []float64 {
		t := totals[symbol]
		return perRequest([]float64{t[ir], t[dr], t[d1mr], t[dlmr]}, requests)
	}
	row := func(name string, v []float64) { printRow(w, name, v) }
	fmt.Fprintf(w, "\nper request, %d requests of each kind\n\n", requests)
	fmt.Fprintln(w, "| | instructions | data reads | D1 read misses | LL read misses |\n| --- | --- | --- | --- | --- |")
	for _, wr := range wrappers {
		row(wr.name, per(wr.symbol))
	}
	for _, kind := range []string{"bearer", "session"} {
		hit, base := per("main."+kind+"Hit"), per("main."+kind+"Baseline")
		for i := range hit {
			hit[i] -= base[i]
		}
		row(kind+" handler (hit − baseline)", hit)
	}
	return nil
}

// perRequest divides counts by requests.
func perRequest(counts []float64, requests int) []float64 {
	out := make([]float64, len(counts))
	for i, c := range counts {
		out[i] = c / float64(requests)
	}
	return out
}

// printRow prints one row of a table of counts.
func printRow(w io.Writer, name string, v []float64) {
	fmt.Fprintf(w, "| %s |", name)
	for _, x := range v {
		fmt.Fprintf(w, " %.1f |", x)
	}
	fmt.Fprintln(w)
}
