package callerauth

import (
	"errors"
	"strings"
)

// Rejection reasons: a bounded name for each way a caller's token is refused, for metrics. They name the rule,
// never a claim value.
const (
	ReasonMissing            = "missing"       // no bearer token, or an empty one
	ReasonTooLarge           = "too_large"     // over maxTokenBytes
	ReasonMalformed          = "malformed"     // not a compact JWS with a kid, or claims that do not decode
	ReasonAlgorithm          = "algorithm"     // alg none, HMAC, anything but RS256
	ReasonUnknownKey         = "unknown_key"   // kid not in the tenant's keys
	ReasonSignature          = "signature"     // the signature does not verify
	ReasonVersion            = "version"       // ver is neither 1.0 nor 2.0
	ReasonMissingClaim       = "missing_claim" // no exp, tid or oid
	ReasonExpired            = "expired"       // exp passed (with skew)
	ReasonNotYetValid        = "not_yet_valid" // nbf ahead (with skew)
	ReasonTenant             = "tenant"        // another tenant's token
	ReasonIssuer             = "issuer"        // an issuer that is not the tenant's
	ReasonAudience           = "audience"      // not for this API
	ReasonAppOnly            = "app_only"      // no scp: not a delegated user token
	ReasonInsufficientScope  = "insufficient_scope"
	ReasonClientAppForbidden = "client_app_not_allowed"
	ReasonKeysUnavailable    = "keys_unavailable" // the tenant's keys could not be fetched: the token was not judged
	ReasonOther              = "other"
)

// descriptionReasons maps the start of each InvalidTokenError description (see invalid) to its reason; the
// first match wins. TestEveryRejectionHasAReason keeps it complete.
var descriptionReasons = []struct{ prefix, reason string }{
	{"missing bearer token", ReasonMissing},
	{"empty token", ReasonMissing},
	{"token is too large", ReasonTooLarge},
	{"malformed token", ReasonMalformed},
	{"token has no kid", ReasonMalformed},
	{"alg ", ReasonAlgorithm},
	{"unknown signing key", ReasonUnknownKey},
	{"invalid signature", ReasonSignature},
	{"token version ", ReasonVersion},
	{"token has no audience", ReasonAudience},
	{"token has no ", ReasonMissingClaim},
	{"token expired", ReasonExpired},
	{"token is not valid yet", ReasonNotYetValid},
	{"token is from tenant ", ReasonTenant},
	{"issuer ", ReasonIssuer},
	{"audience", ReasonAudience},
	{"not a delegated user token", ReasonAppOnly},
}

// RejectionReason names why err refused a caller's token, from a bounded set (the Reason constants); an error
// that is not a rejection is ReasonOther.
func RejectionReason(err error) string {
	var bad *InvalidTokenError
	var forbidden *ForbiddenError
	switch {
	case errors.As(err, &bad):
		for _, r := range descriptionReasons {
			if strings.HasPrefix(bad.Description, r.prefix) {
				return r.reason
			}
		}
	case errors.As(err, &forbidden):
		if forbidden.MissingScope {
			return ReasonInsufficientScope
		}
		return ReasonClientAppForbidden
	case errors.Is(err, ErrKeysUnavailable):
		return ReasonKeysUnavailable
	}
	return ReasonOther
}
