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

// events are the counts shown, in callgrind's names: instructions, data reads, and data reads that missed the
// first level and the last.
var events = []string{"Ir", "Dr", "D1mr", "DLmr"}

// readDumps reads callgrind's first n dumps, prefix.1 to prefix.n, and adds up each wrapper's counts: a dump
// names its wrapper in its trigger, as the child asked for it.
func readDumps(prefix string, n int) (map[string][]float64, error) {
	totals := map[string][]float64{}
	for i := 1; i <= n; i++ {
		file := fmt.Sprintf("%s.%d", prefix, i)
		text, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("callgrind wrote %d dumps of %d: %w", i-1, n, err)
		}
		symbol := parseTrigger(string(text))
		counts, ok := parseTotals(string(text))
		if !slices.ContainsFunc(wrappers, func(w wrapper) bool { return w.symbol == symbol }) || !ok {
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
		out := make([]float64, len(events))
		for i, c := range totals[symbol] {
			out[i] = c / float64(requests)
		}
		return out
	}
	row := func(name string, v []float64) {
		fmt.Fprintf(w, "| %s |", name)
		for _, x := range v {
			fmt.Fprintf(w, " %.1f |", x)
		}
		fmt.Fprintln(w)
	}
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
