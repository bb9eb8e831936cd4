package testenv

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// fipsOnlyChild marks the process InFIPSOnlyChild starts.
const fipsOnlyChild = "TESTENV_FIPS_ONLY_CHILD"

// InFIPSOnlyChild reports whether this process runs with GODEBUG=fips140=only, started by InFIPSOnlyChild; the
// calling test's body then runs here. Otherwise it runs the calling test again in such a process (the setting is
// read at start, so a test cannot turn it on for itself), fails t unless that run passed, and returns false.
func InFIPSOnlyChild(t *testing.T) bool {
	t.Helper()
	if os.Getenv(fipsOnlyChild) != "" {
		return true
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+t.Name()+"$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), "GODEBUG=fips140=only", fipsOnlyChild+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: "+t.Name()) {
		t.Fatalf("%s under GODEBUG=fips140=only: %v\n%s", t.Name(), err, out)
	}
	return false
}
