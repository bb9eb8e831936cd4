package testenv

import (
	"os"
	"strconv"
	"testing"
)

// CI reports whether the tests run in CI (CI=true), where nothing may skip.
func CI() bool {
	v, _ := strconv.ParseBool(os.Getenv("CI"))
	return v
}

// SkipUnlessAllowed skips t with the reason, except in CI, where a test that cannot run is a failure.
func SkipUnlessAllowed(t testing.TB, format string, args ...any) {
	t.Helper()
	if CI() {
		t.Fatalf("CI=true, so this test may not skip: "+format, args...)
	}
	t.Skipf(format, args...)
}

// Integration marks t as an integration test (real servers, real Caddy): skipped under -short, except in CI.
func Integration(t testing.TB) {
	t.Helper()
	if testing.Short() {
		SkipUnlessAllowed(t, "an integration test; -short skips it")
	}
}
