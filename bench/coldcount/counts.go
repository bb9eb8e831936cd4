package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

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

// The lines the child prints before and after a phase, followed by its wrapper's symbol.
const (
	readyLine = "coldcount: ready" // the setup is done: instrumentation goes on
	startLine = "coldcount: start"
	doneLine  = "coldcount: done"
)

// events are the counts shown, in callgrind's names: instructions, data reads, and data reads that missed the
// first level and the last.
var events = []string{"Ir", "Dr", "D1mr", "DLmr"}

// runPhases runs cmd (the child under callgrind), has callgrind dump its counts at each phase the child reports,
// and adds up each wrapper's.
func runPhases(cmd *exec.Cmd, prefix string) (map[string][]float64, error) {
	// Go preempts goroutines with signals, which callgrind cannot follow.
	cmd.Env = append(os.Environ(), childEnv+"=1", "GODEBUG=asyncpreemptoff=1")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	totals, err := followPhases(cmd.Process.Pid, stdout, stdin, prefix)
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, err
	}
	if err := cmd.Wait(); err != nil {
		return nil, fmt.Errorf("valgrind: %w", err)
	}
	return totals, nil
}

// followPhases reads the child's output. It turns instrumentation on when the child is ready, zeroes the
// counts as a phase starts and dumps them when it is done, letting the child go on after each.
func followPhases(pid int, stdout io.Reader, stdin io.Writer, prefix string) (map[string][]float64, error) {
	totals := map[string][]float64{}
	sc := bufio.NewScanner(stdout)
	for dumps := 1; sc.Scan(); {
		line := sc.Text()
		symbol, done := strings.CutPrefix(line, doneLine+" ")
		switch {
		case strings.HasPrefix(line, readyLine):
			if err := callgrindControl(pid, "--instr=on"); err != nil {
				return nil, err
			}
		case strings.HasPrefix(line, startLine+" "):
			if err := callgrindControl(pid, "--zero"); err != nil {
				return nil, err
			}
		case done:
			counts, err := dump(pid, fmt.Sprintf("%s.%d", prefix, dumps))
			if err != nil {
				return nil, err
			}
			dumps++
			if totals[symbol] == nil {
				totals[symbol] = make([]float64, len(events))
			}
			for i, c := range counts {
				totals[symbol][i] += c
			}
		default:
			fmt.Println(line)
			continue
		}
		if _, err := fmt.Fprintln(stdin); err != nil {
			return nil, err
		}
	}
	return totals, sc.Err()
}

// callgrindControl sends the running callgrind one command.
func callgrindControl(pid int, command string) error {
	if out, err := exec.Command("callgrind_control", command, strconv.Itoa(pid)).CombinedOutput(); err != nil {
		return fmt.Errorf("callgrind_control %s: %w: %s", command, err, out)
	}
	return nil
}

// dump has callgrind write what it counted since the last dump to file, and reads the totals there.
func dump(pid int, file string) ([]float64, error) {
	if err := callgrindControl(pid, "--dump"); err != nil {
		return nil, err
	}
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		text, err := os.ReadFile(file)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		if counts, ok := parseTotals(string(text)); ok {
			return counts, nil
		}
	}
	return nil, fmt.Errorf("callgrind wrote no totals to %s within a minute", file)
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
