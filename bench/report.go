package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"time"
)

// Row is one line of the table: the item, what was measured, the value, the target, and whether it was
// met ("" when the row has no target).
type Row struct {
	Item, Measure, Value, Target, Met string
}

func verdict(ok bool) string {
	if ok {
		return "yes"
	}
	return "NO"
}

// ms formats a duration in milliseconds with two decimals, keeping the sign.
func ms(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d)/float64(time.Millisecond)) }

// us formats a duration in microseconds with one decimal.
func us(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d)/float64(time.Microsecond)) }

func secs(d time.Duration) string { return fmt.Sprintf("%.2f", d.Seconds()) }

// machine describes where the numbers come from, as BENCHMARKS.md must record it.
type machine struct {
	Date       time.Time
	Cores      int // what nproc prints: CPUs this process may run on
	GOMAXPROCS int
	CPU        string
	MemGiB     float64
	Go         string
}

func thisMachine() machine {
	return machine{Date: time.Now().UTC(), Cores: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0),
		CPU: procField("/proc/cpuinfo", "model name"), MemGiB: memTotalGiB(),
		Go: runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH}
}

// procField returns the value of the first "name : value" line of a /proc file, or "unknown".
func procField(path, name string) string {
	f, err := os.Open(path)
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == name {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

func memTotalGiB() float64 {
	var kb float64
	if _, err := fmt.Sscanf(procField("/proc/meminfo", "MemTotal"), "%f", &kb); err != nil {
		return 0
	}
	return kb / (1 << 20)
}

// printTable writes the header and the Markdown table, so the output pastes into BENCHMARKS.md as is.
func printTable(w io.Writer, m machine, cfg Config, rows []Row, took time.Duration) {
	fmt.Fprintf(w, "token_injector benchmark suite (go run ./bench%s)\n\n", map[bool]string{true: " -smoke"}[cfg.Smoke])
	fmt.Fprintf(w, "- date: %s\n", m.Date.Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(w, "- machine: %d cores (nproc), GOMAXPROCS %d, %s, %.0f GiB RAM\n", m.Cores, m.GOMAXPROCS, m.CPU, m.MemGiB)
	fmt.Fprintf(w, "- go: %s\n", m.Go)
	fmt.Fprintf(w, "- config: %s\n\n", cfg)
	widths := [5]int{1, 7, 5, 6, 3}
	head := Row{"#", "measure", "value", "target", "met"}
	all := append([]Row{head}, rows...)
	for _, r := range all {
		for i, c := range r.cells() {
			widths[i] = max(widths[i], len([]rune(c)))
		}
	}
	line := func(cells [5]string) {
		fmt.Fprint(w, "|")
		for i, c := range cells {
			fmt.Fprintf(w, " %s%s |", c, strings.Repeat(" ", widths[i]-len([]rune(c))))
		}
		fmt.Fprintln(w)
	}
	line(head.cells())
	var sep [5]string
	for i := range sep {
		sep[i] = strings.Repeat("-", widths[i])
	}
	line(sep)
	for _, r := range rows {
		line(r.cells())
	}
	fmt.Fprintf(w, "\ntook %s\n", took.Round(time.Second))
}

func (r Row) cells() [5]string { return [5]string{r.Item, r.Measure, r.Value, r.Target, r.Met} }
