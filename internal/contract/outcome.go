package contract

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/tokeninjector/caddy-token-injector/internal/entra"
)

// Outcomes of a token acquisition, for metrics: the class of the answer a client got or would get.
const (
	OutcomeOK                  = "ok"
	OutcomeInteractionRequired = "interaction_required" // reason: the contract's reason
	OutcomeUnavailable         = "unavailable"          // reason: timeout, throttled, entra_error or unreachable
	OutcomeServerError         = "server_error"         // reason: a known AADSTS code, misconfigured, unexpected_answer or other
	OutcomeAccessDenied        = "access_denied"        // reason: the contract's reason
	OutcomeOther               = "other"                // not an answer of the acquisition path (an invalid token)
)

// Outcome classifies an acquisition's result as Decide would answer it, with a detail from a bounded set: never
// an error text, and an AADSTS code only when it is one the contract knows (else "other"). nil is OutcomeOK.
func Outcome(err error) (outcome, reason string) {
	if err == nil {
		return OutcomeOK, ""
	}
	p := Decide(err, nil)
	var e *entra.Error
	isEntra := errors.As(err, &e)
	switch p.Code {
	case CodeInteractionRequired:
		return OutcomeInteractionRequired, p.Reason
	case CodeAccessDenied:
		return OutcomeAccessDenied, p.Reason
	case CodeTemporarilyUnavailable:
		switch {
		case p.Status == http.StatusGatewayTimeout:
			return OutcomeUnavailable, "timeout"
		case isEntra && e.StatusCode == http.StatusTooManyRequests:
			return OutcomeUnavailable, "throttled"
		case isEntra:
			return OutcomeUnavailable, "entra_error"
		}
		return OutcomeUnavailable, "unreachable"
	case CodeServerError:
		var mis *entra.MisconfiguredError
		var unexpected *entra.UnexpectedError
		switch {
		case isEntra:
			return OutcomeServerError, knownAADSTS(e)
		case errors.As(err, &mis):
			return OutcomeServerError, "misconfigured"
		case errors.As(err, &unexpected):
			return OutcomeServerError, "unexpected_answer"
		}
		return OutcomeServerError, "other"
	}
	return OutcomeOther, ""
}

// knownAADSTS is e's first AADSTS code if the contract knows it, so a metric label stays in a bounded set.
func knownAADSTS(e *entra.Error) string {
	if len(e.Codes) == 0 {
		return "other"
	}
	c := e.Codes[0]
	if _, ok := configHintsByCode[c]; ok {
		return "AADSTS" + strconv.Itoa(c)
	}
	for _, list := range [][]int{mfaCodes, conditionalCodes, consentCodes, loginCodes, expiredAssertion, blockedCodes} {
		for _, k := range list {
			if k == c {
				return "AADSTS" + strconv.Itoa(c)
			}
		}
	}
	return "other"
}
