package callerauth

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/tokeninjector/caddy-token-injector/internal/entra"
)

// TestEveryRejectionHasAReason reads every description this package can refuse a token with (each invalid(...)
// call in its source) and checks that metrics name it: a new rule without a reason would be counted as "other".
func TestEveryRejectionHasAReason(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	call := regexp.MustCompile(`invalid\("([^"]*)"`)
	found := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range call.FindAllStringSubmatch(string(src), -1) {
			found++
			// A quoted claim value stands where the format has a verb.
			desc := strings.ReplaceAll(m[1], "%s", `"x"`)
			if r := RejectionReason(&InvalidTokenError{Description: desc}); r == ReasonOther {
				t.Errorf("%s: %q has no rejection reason; add it to descriptionReasons", f, m[1])
			}
		}
	}
	if found < 15 {
		t.Fatalf("found only %d invalid(...) calls; has the constructor been renamed?", found)
	}
}

func TestRejectionReason(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{invalid("token expired"), ReasonExpired},
		{invalid("audience %s is not accepted", safe("api://x")), ReasonAudience},
		{invalid("token has no audience"), ReasonAudience},
		{invalid("token has no oid"), ReasonMissingClaim},
		{invalid("alg %s is not allowed", "HS256"), ReasonAlgorithm},
		{&InvalidTokenError{Description: "missing bearer token"}, ReasonMissing},
		{&ForbiddenError{MissingScope: true}, ReasonInsufficientScope},
		{&ForbiddenError{}, ReasonClientAppForbidden},
		{errors.Join(ErrKeysUnavailable, &entra.UnavailableError{Op: "fetching signing keys"}), ReasonKeysUnavailable},
		{context.Canceled, ReasonOther},
		{invalid("something new"), ReasonOther},
	}
	for _, tt := range tests {
		if got := RejectionReason(tt.err); got != tt.want {
			t.Errorf("RejectionReason(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}
