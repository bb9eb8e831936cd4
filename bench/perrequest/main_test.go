package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/pprof/profile"

	"github.com/tokeninjector/caddy-token-injector/bench/harness"
)

// writeProfile writes a CPU profile whose samples each take ms milliseconds of CPU in the given stack (leaf first),
// labelled with role when it is not empty.
func writeProfile(t *testing.T, path string, samples []testSample) {
	t.Helper()
	p := &profile.Profile{
		SampleType: []*profile.ValueType{{Type: "samples", Unit: "count"}, {Type: "cpu", Unit: "nanoseconds"}},
		PeriodType: &profile.ValueType{Type: "cpu", Unit: "nanoseconds"},
		Period:     10_000_000,
	}
	funcs := map[string]*profile.Function{}
	for _, s := range samples {
		var locs []*profile.Location
		for _, name := range s.stack {
			fn := funcs[name]
			if fn == nil {
				fn = &profile.Function{ID: uint64(len(funcs) + 1), Name: name}
				funcs[name] = fn
				p.Function = append(p.Function, fn)
			}
			loc := &profile.Location{ID: uint64(len(p.Location) + 1), Line: []profile.Line{{Function: fn}}}
			p.Location = append(p.Location, loc)
			locs = append(locs, loc)
		}
		sample := &profile.Sample{Location: locs, Value: []int64{s.ms / 10, s.ms * 1_000_000}}
		if s.role != "" {
			sample.Label = map[string][]string{harness.RoleLabel: {s.role}}
		}
		p.Sample = append(p.Sample, sample)
	}
	var b bytes.Buffer
	if err := p.Write(&b); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

type testSample struct {
	role  string
	ms    int64
	stack []string
}

// Functions of the table's columns.
var (
	conn    = columns[0].Func
	server  = columns[1].Func
	handler = handlerFunc
	proxy   = proxyFunc
	token   = "github.com/tokeninjector/caddy-token-injector/internal/acquire.(*Engine).Token"
)

func TestSummarizeCountsPerRequest(t *testing.T) {
	dir := t.TempDir()
	// Two rounds of the bearer kind, 1,000 requests in all, and one of its control, 500 requests.
	writeProfile(t, filepath.Join(dir, "scale-cpu-bearer-1000-0.pprof"), []testSample{
		{harness.RoleCaddy, 30, []string{"leaf", proxy, handler, server, conn}},
		{harness.RoleCaddy, 20, []string{"leaf", token, handler, server, conn}},
		// A recursive stack counts once for each function on it.
		{harness.RoleCaddy, 10, []string{"leaf", handler, "mid", handler, server, conn}},
		{harness.RoleClient, 40, []string{"loadgen"}},
	})
	writeProfile(t, filepath.Join(dir, "scale-cpu-bearer-1000-1.pprof"), []testSample{
		{harness.RoleCaddy, 10, []string{"leaf", proxy, server, conn}}, // reverse_proxy outside the handler
	})
	writeProfile(t, filepath.Join(dir, "scale-cpu-control-bearer-1000-0.pprof"), []testSample{
		{harness.RoleCaddy, 25, []string{"leaf", proxy, server, conn}},
		{harness.RoleUpstream, 5, []string{"upstream"}},
	})
	rounds := "control-bearer-1000\t0\t500\nbearer-1000\t0\t600\nbearer-1000\t1\t400\n"
	if err := os.WriteFile(filepath.Join(dir, "scale-rounds.tsv"), []byte(rounds), 0o644); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := summarize(&out, dir); err != nil {
		t.Fatal(err)
	}
	// bearer: 110 ms of process CPU over 1,000 requests is 110 µs; Caddy 70; conn.serve and Server.ServeHTTP 70;
	// the handler 60; reverse_proxy 40 (30 inside the handler); Engine.Token 20; the handler's own 60 - 30 = 30.
	// control: 30 ms over 500 requests; Caddy 25 ms.
	for _, want := range []string{
		"| control-bearer-1000 | 500 | 20.000 | 60.00 | 50.00 | 50.00 | 50.00 | 0.00 | 50.00 | 0.00 | 0.00 | 0.00 | 0.00 |",
		"| bearer-1000 | 1000 | 10.000 | 110.00 | 70.00 | 70.00 | 70.00 | 60.00 | 40.00 | 0.00 | 0.00 | 20.00 | 30.00 |",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the table lacks the row\n%s\nit is:\n%s", want, out.String())
		}
	}
	if i, j := strings.Index(out.String(), "| control-bearer-1000"), strings.Index(out.String(), "| bearer-1000"); i > j {
		t.Errorf("the control's row comes after its kind's:\n%s", out.String())
	}
}

func TestSummarizeRefusesWhatIsNotAProfileDirectory(t *testing.T) {
	dir := t.TempDir()
	if err := summarize(&strings.Builder{}, dir); err == nil || !strings.Contains(err.Error(), "no rounds.tsv") {
		t.Errorf("an empty directory: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "rounds.tsv"), []byte("plain\t0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := summarize(&strings.Builder{}, dir); err == nil || !strings.Contains(err.Error(), "malformed") {
		t.Errorf("a malformed rounds.tsv: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "rounds.tsv"), []byte("plain\t0\t10\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := summarize(&strings.Builder{}, dir); err == nil || !strings.Contains(err.Error(), "no profiles match") {
		t.Errorf("rounds without their profiles: %v", err)
	}
}

func TestDiffPutsTheLargestDifferenceFirst(t *testing.T) {
	dir := t.TempDir()
	// 1,000 measured requests and 500 of the control's. Per request: memeq 30 against 10 µs, syscall 20
	// against 20, the upstream's read 5 against 10.
	writeProfile(t, filepath.Join(dir, "scale-cpu-session-1000-0.pprof"), []testSample{
		{harness.RoleCaddy, 30, []string{"memeq", handler, server, conn}},
		{harness.RoleCaddy, 20, []string{"syscall", proxy, server, conn}},
		{harness.RoleUpstream, 5, []string{"read"}},
	})
	writeProfile(t, filepath.Join(dir, "scale-cpu-control-session-1000-0.pprof"), []testSample{
		{harness.RoleCaddy, 5, []string{"memeq", proxy, server, conn}},
		{harness.RoleCaddy, 10, []string{"syscall", proxy, server, conn}},
		{harness.RoleUpstream, 5, []string{"read"}},
	})
	rounds := "control-session-1000\t0\t500\nsession-1000\t0\t1000\n"
	if err := os.WriteFile(filepath.Join(dir, "scale-rounds.tsv"), []byte(rounds), 0o644); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := diff(&out, dir, "session-1000"); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, want := range []string{
		"process 55.00 against 40.00 (+15.00)",
		"| caddy | memeq | 30.00 | 10.00 | +20.00 |\n| upstream | read | 5.00 | 10.00 | -5.00 |\n| caddy | syscall | 20.00 | 20.00 | +0.00 |",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("the diff lacks\n%s\nit is:\n%s", want, got)
		}
	}
	if err := diff(&out, dir, "bearer-1000"); err == nil || !strings.Contains(err.Error(), "no rounds of both") {
		t.Errorf("a kind without rounds: %v", err)
	}
}
