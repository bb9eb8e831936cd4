package contract

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap/zapcore"

	"github.com/tokeninjector/caddy-token-injector/internal/acquire"
	"github.com/tokeninjector/caddy-token-injector/internal/callerauth"
	"github.com/tokeninjector/caddy-token-injector/internal/entra"
	"github.com/tokeninjector/caddy-token-injector/internal/session"
	"github.com/tokeninjector/caddy-token-injector/internal/tokencache"
)

// Reasons tell the client which interactive step fixes an interaction_required answer (README: "Handling 401").
const (
	ReasonConsentRequired     = "consent_required"     // the user (or an admin) must consent to the scopes
	ReasonMFARequired         = "mfa_required"         // replay Claims: getAccessToken({authChallenge}) / MSAL claims
	ReasonConditionalAccess   = "conditional_access"   // another Conditional Access step; replay Claims
	ReasonLoginRequired       = "login_required"       // the sign-in behind the token is gone; sign in again
	ReasonSSOTokenExpired     = "sso_token_expired"    // fetch a fresh SSO token and retry; no prompt needed
	ReasonInteractionRequired = "interaction_required" // Entra asked for interaction without saying which
)

// Entra codes by what fixes them. Source: Entra's AADSTS error reference.
var (
	mfaCodes          = []int{50076, 50079, 50072, 50074}
	conditionalCodes  = []int{50158, 53000, 53001, 53002, 53004}
	consentCodes      = []int{65001}
	loginCodes        = []int{50173, 700082, 70043, 70008, 50078, 50133, 50058, 16000}
	expiredAssertion  = []int{500133, 50013}
	blockedCodes      = []int{53003}
	configHintsByCode = map[int]string{
		7000215: "the client secret is wrong: set client_secret to a current secret of the app registration",
		7000222: "the client secret has expired: create a new secret and update client_secret",
		700016:  "no app with this client_id exists in the tenant: check client_id and tenant",
		70011:   "a configured scope is not valid: check the route's scopes (a resource's .default cannot be mixed with other scopes of it)",
		65005:   "the app registration does not declare these permissions, or they need admin consent: add them under API permissions",
		500011:  "the resource in a configured scope is not known in the tenant: check the scopes' resource URI",
		90009:   "the app is requesting a token for itself: use the downstream API's scopes, not this app's own",
		700024:  "the client assertion has expired or is not yet valid: a federated token file must be renewed by its issuer (kubelet does it for AKS), and the host's clock must be right",
		700027:  "Entra does not know the certificate that signed the client assertion: upload client_certificate's certificate to the app registration, or set send_x5c if the app trusts it by subject name and issuer",
		70021:   "no federated credential of the app registration matches the assertion's issuer, subject and audience: add one for them to the app (Certificates & secrets, Federated credentials)",
		700211:  "no federated credential of the app registration has the assertion's issuer: add one for it to the app",
		700213:  "no federated credential of the app registration has the assertion's subject: check the service account or managed identity named in the app's federated credential",
		50027:   "the client assertion is not a valid JWT: check client_assertion_file's token (or the managed identity's)",
		7000218: "the token request carried no credential: set client_secret, client_certificate, client_assertion_file or managed_identity",
		90002:   "no such tenant in this cloud: check tenant (a tenant ID or verified domain) and authority_host",
		50011:   "the redirect URI is not registered on the app",
	}
)

// Decide maps any error of the request path to the contract's answer. It is the only place that decides what a
// client gets: which Entra answers ask the user to interact, what is transient, and what is the operator's to
// fix. Anything it does not recognise is a server error, never interaction_required.
func Decide(err error, scopes []string) *Problem {
	var (
		bad         *callerauth.InvalidTokenError
		forbidden   *callerauth.ForbiddenError
		entraErr    *entra.Error
		unavailable *entra.UnavailableError
		misconfig   *entra.MisconfiguredError
		unexpected  *entra.UnexpectedError
		challenged  *ChallengedAgainError
	)
	switch {
	case errors.As(err, &bad):
		return InvalidToken(bad.Description)
	case errors.As(err, &forbidden):
		return forbiddenProblem(forbidden)
	case errors.Is(err, session.ErrNoSession), errors.Is(err, acquire.ErrLoginRequired):
		return loginRequired(scopes)
	case errors.Is(err, tokencache.ErrStoreUnavailable):
		return storeUnavailable(err)
	case errors.Is(err, context.DeadlineExceeded):
		return unavailableProblem(true, 0, "", err)
	case errors.As(err, &misconfig):
		return serverError("the proxy is misconfigured: "+misconfig.Error(), "")
	case errors.As(err, &unavailable):
		return unavailableProblem(unavailable.Timeout, 0, "", err)
	case errors.As(err, &entraErr):
		return fromEntra(entraErr, scopes)
	case errors.As(err, &unexpected):
		return serverError(unexpected.Error(), "")
	case errors.As(err, &challenged):
		return challengedAgain(challenged, scopes)
	}
	return serverError("token acquisition failed: "+err.Error(), "")
}

// forbiddenProblem is the answer for a valid token that this route does not accept (RFC 6750 insufficient_scope,
// or a client application that is not allowed). A new token of the same kind will not help.
func forbiddenProblem(f *callerauth.ForbiddenError) *Problem {
	if f.MissingScope {
		return &Problem{Status: http.StatusForbidden, Code: CodeInsufficientScope, Description: f.Description}
	}
	if f.TenantNotAllowed {
		return &Problem{Status: http.StatusForbidden, Code: CodeAccessDenied, Reason: "tenant_not_allowed",
			Description: f.Description}
	}
	return &Problem{Status: http.StatusForbidden, Code: CodeAccessDenied, Reason: "client_app_not_allowed",
		Description: f.Description}
}

// fromEntra maps a refusal from Entra.
func fromEntra(e *entra.Error, scopes []string) *Problem {
	if e.Transient() {
		return unavailableProblem(false, e.RetryAfter, e.CorrelationID, e)
	}
	if reason := interactionReason(e); reason != "" {
		return &Problem{Status: http.StatusUnauthorized, Code: CodeInteractionRequired, Reason: reason,
			Description: userFacingDescription(reason), Claims: e.Claims, Scopes: scopes, CorrelationID: e.CorrelationID}
	}
	if e.HasCode(blockedCodes...) {
		return &Problem{Status: http.StatusForbidden, Code: CodeAccessDenied, Reason: "blocked_by_conditional_access",
			Description: "a Conditional Access policy blocks this access; signing in again will not help",
			Scopes:      scopes, CorrelationID: e.CorrelationID}
	}
	return configurationProblem(e)
}

func interactionReason(e *entra.Error) string {
	switch {
	case e.HasCode(expiredAssertion...):
		return ReasonSSOTokenExpired
	case e.HasCode(consentCodes...) || e.Suberror == "consent_required":
		return ReasonConsentRequired
	case e.HasCode(mfaCodes...):
		return ReasonMFARequired
	case e.HasCode(conditionalCodes...):
		return ReasonConditionalAccess
	case e.HasCode(loginCodes...) || e.Suberror == "bad_token" || e.Suberror == "token_expired":
		return ReasonLoginRequired
	case e.Code == "interaction_required" || e.Suberror == "basic_action" || e.Suberror == "additional_action":
		if e.Claims != "" {
			return ReasonConditionalAccess
		}
		return ReasonInteractionRequired
	}
	return ""
}

func userFacingDescription(reason string) string {
	switch reason {
	case ReasonSSOTokenExpired:
		return "the caller's token expired before it could be exchanged; get a fresh token and retry"
	case ReasonConsentRequired:
		return "the user has not consented to the scopes this route needs"
	case ReasonMFARequired:
		return "multi-factor authentication is required; retry with the claims challenge"
	case ReasonConditionalAccess:
		return "a Conditional Access policy requires the user to interact; retry with the claims challenge"
	case ReasonLoginRequired:
		return "the user must sign in again"
	}
	return "the user must interact with Entra ID"
}

// unavailableProblem is the answer when retrying later can succeed. cause is logged, once, at warning level.
func unavailableProblem(timeout bool, retryAfter time.Duration, correlationID string, cause error) *Problem {
	p := &Problem{Status: http.StatusServiceUnavailable, Code: CodeTemporarilyUnavailable,
		Description: "Entra ID is temporarily unavailable; retry later", CorrelationID: correlationID,
		LogLevel: zapcore.WarnLevel, LogMessage: "identity provider unavailable: " + cause.Error()}
	if timeout {
		p.Status = http.StatusGatewayTimeout
		p.Description = "Entra ID did not answer in time; retry later"
	}
	if retryAfter > 0 {
		p.RetryAfterSeconds = int((retryAfter + time.Second - 1) / time.Second)
	}
	return p
}

// storeUnavailable is the answer while the shared tier (Redis) is down and the request needs it: a session this
// replica has not seen yet. Retrying helps; signing in again would not.
func storeUnavailable(cause error) *Problem {
	return &Problem{Status: http.StatusServiceUnavailable, Code: CodeTemporarilyUnavailable,
		Description: "the session store is temporarily unavailable; retry later", RetryAfterSeconds: 1,
		LogLevel: zapcore.WarnLevel, LogMessage: "shared store unavailable: " + cause.Error()}
}

func configurationProblem(e *entra.Error) *Problem {
	hint := ""
	for _, c := range e.Codes {
		if h, ok := configHintsByCode[c]; ok {
			hint = h
			break
		}
	}
	if hint == "" {
		switch e.Code {
		case "invalid_client":
			hint = "Entra rejected the app's credential: check client_id and the credential (client_secret, client_certificate, client_assertion_file or managed_identity)"
		case "unauthorized_client":
			hint = "the app is not allowed to use this grant: check the app registration"
		case "invalid_scope":
			hint = "a configured scope is not valid: check the route's scopes"
		default:
			hint = "Entra refused the token request; see the AADSTS code in Entra's error reference"
		}
	}
	msg := strings.TrimSpace("Entra rejected the proxy's token request (" + e.AADSTS() + " " + e.Code + "): " + hint)
	return serverError(msg, e.CorrelationID)
}

// serverError is the answer when the proxy cannot do its job and only its operator can fix that. msg is logged,
// once, at error level; the client only learns that it was the proxy's fault.
func serverError(msg, correlationID string) *Problem {
	return &Problem{Status: http.StatusBadGateway, Code: CodeServerError,
		Description: "the proxy could not get a token for the upstream API", CorrelationID: correlationID,
		LogLevel: zapcore.ErrorLevel, LogMessage: msg}
}
