package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestReport(t *testing.T) {
	const (
		pass    = `{"Action":"pass","Package":"p","Test":"TestA"}`
		sub     = `{"Action":"pass","Package":"p","Test":"TestA/x"}`
		fail    = `{"Action":"fail","Package":"p","Test":"TestB"}`
		skip    = `{"Action":"skip","Package":"p","Test":"TestC"}`
		pkgFail = `{"Action":"fail","Package":"p"}`
		pkgOK   = `{"Action":"pass","Package":"p"}`
		noTests = `{"Action":"skip","Package":"q"}`
		out     = `{"Action":"output","Package":"p","Test":"TestA","Output":"--- PASS: TestA\n"}`
	)
	tests := []struct {
		name     string
		lines    []string
		ci       bool
		wantLine string
		wantCode int
		wantOut  []string
	}{
		{"all pass", []string{out, pass, sub, pkgOK, noTests}, true, "tests: 2 passed, 0 failed, 0 skipped", 0, []string{"--- PASS: TestA"}},
		{"a failure", []string{pass, fail, pkgFail}, false, "tests: 1 passed, 1 failed, 0 skipped", 1, []string{"  p TestB"}},
		{"a package that does not build", []string{"# p\nx.go:1: syntax error", pkgFail}, false, "tests: 0 passed, 0 failed, 0 skipped", 1, []string{"syntax error", "  p\n"}},
		{"a skip, locally", []string{pass, skip, pkgOK}, false, "tests: 1 passed, 0 failed, 1 skipped", 0, nil},
		{"a skip, in CI", []string{pass, skip, pkgOK}, true, "tests: 1 passed, 0 failed, 1 skipped", 1, []string{"CI=true", "  p TestC"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var w bytes.Buffer
			s, err := report(strings.NewReader(strings.Join(tt.lines, "\n")), &w)
			if err != nil {
				t.Fatal(err)
			}
			code := verdict(s, tt.ci, &w)
			got := w.String()
			if code != tt.wantCode || !strings.HasSuffix(got, tt.wantLine+"\n") {
				t.Fatalf("exit %d (want %d), output:\n%s", code, tt.wantCode, got)
			}
			for _, want := range tt.wantOut {
				if !strings.Contains(got, want) {
					t.Errorf("output lacks %q:\n%s", want, got)
				}
			}
		})
	}
}
