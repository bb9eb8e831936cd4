// Command testreport reads `go test -json` on stdin, echoes the tests' normal output, and ends with the line CI
// reads: "tests: N passed, N failed, N skipped". It exits 1 when a test or a package failed, and under CI=true
// also when any test skipped (it names them): in CI nothing may skip.
//
//	go test -race -count=1 -json ./... | go run ./internal/dev/testreport
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
)

// event is one line of test2json's output.
type event struct {
	Action  string
	Package string
	Test    string
	Output  string
}

// summary is what the run found.
type summary struct {
	Passed, Failed, Skipped int
	FailedNames             []string // "pkg TestX" of failed tests, and "pkg" of packages that failed as a whole
	SkippedNames            []string
}

func main() {
	ci, _ := strconv.ParseBool(os.Getenv("CI"))
	s, err := report(os.Stdin, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testreport:", err)
		os.Exit(2)
	}
	os.Exit(verdict(s, ci, os.Stdout))
}

// report echoes the output of every event and counts the tests' outcomes.
func report(r io.Reader, w io.Writer) (summary, error) {
	var s summary
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			// go test writes build errors as plain text: pass them on.
			fmt.Fprintln(w, sc.Text())
			continue
		}
		io.WriteString(w, e.Output)
		s.add(e)
	}
	return s, sc.Err()
}

func (s *summary) add(e event) {
	name := e.Package
	if e.Test != "" {
		name += " " + e.Test
	}
	switch {
	case e.Action == "pass" && e.Test != "":
		s.Passed++
	case e.Action == "fail":
		// A package fails as a whole after a failed test, and alone when it doesn't build or TestMain fails.
		if e.Test != "" || !s.hasFailureIn(e.Package) {
			s.FailedNames = append(s.FailedNames, name)
		}
		if e.Test != "" {
			s.Failed++
		}
	case e.Action == "skip" && e.Test != "":
		s.Skipped++
		s.SkippedNames = append(s.SkippedNames, name)
	}
}

func (s *summary) hasFailureIn(pkg string) bool {
	for _, n := range s.FailedNames {
		if n == pkg || len(n) > len(pkg) && n[:len(pkg)+1] == pkg+" " {
			return true
		}
	}
	return false
}

// verdict prints the summary line and returns the exit code.
func verdict(s summary, ci bool, w io.Writer) int {
	code := 0
	if len(s.FailedNames) > 0 {
		fmt.Fprintln(w, "\nfailed:")
		for _, n := range s.FailedNames {
			fmt.Fprintln(w, "  "+n)
		}
		code = 1
	}
	if ci && s.Skipped > 0 {
		fmt.Fprintln(w, "\nCI=true, and these tests skipped:")
		for _, n := range s.SkippedNames {
			fmt.Fprintln(w, "  "+n)
		}
		code = 1
	}
	fmt.Fprintf(w, "tests: %d passed, %d failed, %d skipped\n", s.Passed, s.Failed, s.Skipped)
	return code
}
