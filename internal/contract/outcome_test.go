package contract

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/tokeninjector/caddy-token-injector/internal/acquire"
	"github.com/tokeninjector/caddy-token-injector/internal/entra"
)

func TestOutcome(t *testing.T) {
	tests := []struct {
		name            string
		err             error
		outcome, reason string
	}{
		{"token", nil, OutcomeOK, ""},
		{"mfa", &entra.Error{StatusCode: 400, Code: "invalid_grant", Codes: []int{50076}, Claims: `{"x":1}`},
			OutcomeInteractionRequired, ReasonMFARequired},
		{"consent", &entra.Error{StatusCode: 400, Code: "invalid_grant", Codes: []int{65001}},
			OutcomeInteractionRequired, ReasonConsentRequired},
		{"session gone", acquire.ErrLoginRequired, OutcomeInteractionRequired, ReasonLoginRequired},
		{"blocked", &entra.Error{StatusCode: 400, Codes: []int{53003}}, OutcomeAccessDenied, "blocked_by_conditional_access"},
		{"timeout", fmt.Errorf("%w: x", context.DeadlineExceeded), OutcomeUnavailable, "timeout"},
		{"throttled", &entra.Error{StatusCode: 429}, OutcomeUnavailable, "throttled"},
		{"entra 503", &entra.Error{StatusCode: 503}, OutcomeUnavailable, "entra_error"},
		{"refused", &entra.UnavailableError{Op: "token request", Err: errors.New("connection refused")},
			OutcomeUnavailable, "unreachable"},
		{"bad secret", &entra.Error{StatusCode: 401, Code: "invalid_client", Codes: []int{7000215}},
			OutcomeServerError, "AADSTS7000215"},
		{"a code the contract does not know", &entra.Error{StatusCode: 400, Code: "invalid_request", Codes: []int{9999999}},
			OutcomeServerError, "other"},
		{"no code", &entra.Error{StatusCode: 400, Code: "invalid_request"}, OutcomeServerError, "other"},
		{"misconfigured", &entra.MisconfiguredError{Op: "token request", Err: errors.New("x509")}, OutcomeServerError, "misconfigured"},
		{"unexpected", &entra.UnexpectedError{Op: "token request"}, OutcomeServerError, "unexpected_answer"},
		{"anything else", errors.New("boom"), OutcomeServerError, "other"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, r := Outcome(tt.err)
			if o != tt.outcome || r != tt.reason {
				t.Fatalf("Outcome = %s/%s, want %s/%s", o, r, tt.outcome, tt.reason)
			}
		})
	}
}
