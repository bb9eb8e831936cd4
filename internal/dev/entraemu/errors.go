package entraemu

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// aadError is an Entra STS error: the OAuth error, the AADSTS code and its message text.
// Messages follow the text real Entra returns (see the catalogue below).
type aadError struct {
	status   int
	err      string // OAuth "error"
	code     int    // AADSTS number
	msg      string // message without the "AADSTSnnnnn: " prefix
	suberror string
	claims   string
}

func (a *aadError) Error() string { return fmt.Sprintf("AADSTS%d: %s", a.code, a.msg) }

// errorBody is Entra's error JSON, fields in Entra's order.
type errorBody struct {
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description"`
	ErrorCodes       []int  `json:"error_codes"`
	Timestamp        string `json:"timestamp"`
	TraceID          string `json:"trace_id"`
	CorrelationID    string `json:"correlation_id"`
	ErrorURI         string `json:"error_uri"`
	Suberror         string `json:"suberror,omitempty"`
	Claims           string `json:"claims,omitempty"`
}

const entraTimestamp = "2006-01-02 15:04:05Z"

// dotnetTime formats like the .NET round-trip format Entra embeds in messages: 7 fraction digits.
func dotnetTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.0000000Z") }

// dotnetSpan formats a duration as a .NET TimeSpan ("1.00:00:00", "00:10:00").
func dotnetSpan(d time.Duration) string {
	d = d.Round(time.Second)
	days := int(d / (24 * time.Hour))
	d -= time.Duration(days) * 24 * time.Hour
	s := fmt.Sprintf("%02d:%02d:%02d", int(d/time.Hour), int(d/time.Minute)%60, int(d/time.Second)%60)
	if days > 0 {
		s = strconv.Itoa(days) + "." + s
	}
	return s
}

// correlationID echoes the client's client-request-id as Entra does, else invents one.
func correlationID(r *http.Request) string {
	if id := r.Header.Get("client-request-id"); id != "" && len(id) <= 64 {
		return id
	}
	return newGUID()
}

func (e *Emulator) errorBody(r *http.Request, a *aadError) (errorBody, string) {
	trace, corr := newGUID(), correlationID(r)
	ts := e.now().UTC().Format(entraTimestamp)
	return errorBody{
		Error: a.err,
		ErrorDescription: fmt.Sprintf("AADSTS%d: %s Trace ID: %s Correlation ID: %s Timestamp: %s",
			a.code, a.msg, trace, corr, ts),
		ErrorCodes:    []int{a.code},
		Timestamp:     ts,
		TraceID:       trace,
		CorrelationID: corr,
		ErrorURI:      e.baseURL(r) + "/error?code=" + strconv.Itoa(a.code),
		Suberror:      a.suberror,
		Claims:        a.claims,
	}, trace
}

// writeError writes a token/discovery endpoint error as JSON.
func (e *Emulator) writeError(w http.ResponseWriter, r *http.Request, a *aadError) {
	body, trace := e.errorBody(r, a)
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-store, no-cache")
	h.Set("Pragma", "no-cache")
	h.Set("x-ms-request-id", trace)
	h.Set("client-request-id", body.CorrelationID)
	w.WriteHeader(a.status)
	_ = json.NewEncoder(w).Encode(body)
}

// The catalogue: one constructor per case, with the code and the real message text.

func errTenantNotFound(t, oauthErr string) *aadError {
	return &aadError{400, oauthErr, 90002, fmt.Sprintf("Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant.", t), "", ""}
}

func errMissingParam(name string) *aadError {
	return &aadError{400, "invalid_request", 900144, fmt.Sprintf("The request body must contain the following parameter: '%s'.", name), "", ""}
}

func errMissingClientSecret() *aadError {
	return &aadError{401, "invalid_client", 7000218, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.", "", ""}
}

func errBadSecret(clientID string) *aadError {
	return &aadError{401, "invalid_client", 7000215, fmt.Sprintf("Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '%s'.", clientID), "", ""}
}

func errPublicClientWithSecret() *aadError {
	return &aadError{401, "invalid_client", 700025, "Client is public so neither 'client_assertion' nor 'client_secret' should be presented.", "", ""}
}

func (e *Emulator) errUnknownClient(clientID string) *aadError {
	return &aadError{400, "unauthorized_client", 700016, fmt.Sprintf("Application with identifier '%s' was not found in the directory '%s'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.", clientID, e.tenant), "", ""}
}

func errUnsupportedGrant(g string) *aadError {
	return &aadError{400, "unsupported_grant_type", 70003, fmt.Sprintf("The app requested an unsupported grant type '%s'.", g), "", ""}
}

func errGrantOverCommon() *aadError {
	return &aadError{400, "invalid_request", 9001023, "The grant type isn't supported over the /common or /consumers endpoints. Please use the /organizations or tenant-specific endpoint.", "", ""}
}

func errMalformedAssertion() *aadError {
	return &aadError{400, "invalid_request", 50027, "JWT token is invalid or malformed.", "", ""}
}

// errAssertionSignature reports a bad OBO assertion signature. Entra prints thumbprints as
// upper-case hex; kid/x5t carry them base64url encoded.
func errAssertionSignature(v *verifyErr, k *signingKey) *aadError {
	thumb := v.thumb
	if raw, err := base64.RawURLEncoding.DecodeString(thumb); err == nil && len(raw) == 20 {
		thumb = strings.ToUpper(hex.EncodeToString(raw))
	}
	msg := fmt.Sprintf("Assertion failed signature validation. [Reason - %s, Thumbprint of key used by client: '%s'", v.reason, thumb)
	if v.thumb == k.kid {
		msg += fmt.Sprintf(", Found key 'Start=%s, End=%s'", k.notBefore.UTC().Format("01/02/2006 15:04:05"), k.notAfter.UTC().Format("01/02/2006 15:04:05"))
	}
	return &aadError{400, "invalid_grant", 50013, msg + "].", "", ""}
}

func errAssertionInvalid(why string) *aadError {
	return &aadError{400, "invalid_grant", 50013, "Assertion is invalid because of various reasons - " + why, "", ""}
}

func errAssertionExpired(now, nbf, exp time.Time, notYet bool) *aadError {
	msg := "Assertion is not within its valid time range. Ensure that the access token is not expired before using it for user assertion, or request a new token. Current time: " + dotnetTime(now)
	if notYet {
		msg += ", assertion valid from " + dotnetTime(nbf)
	}
	return &aadError{400, "invalid_grant", 500133, msg + ", expiry time of assertion " + dotnetTime(exp) + ".", "", ""}
}

// errAssertionAudience is what current Entra returns for an OBO assertion minted for another app.
// Older releases reported it as AADSTS50013; today it is AADSTS500131.
func errAssertionAudience(got, clientID, appName string) *aadError {
	return &aadError{400, "invalid_grant", 500131, fmt.Sprintf("Assertion audience does not match the Client app presenting the assertion. The audience in the assertion was '%s' and the expected audience is '%s' or one of the Application Uris of this application with App ID '%s'(%s). The downstream client must request a token for the expected audience (the application that made the OBO request) and this application should use that token as the assertion.", got, clientID, clientID, appName), "", ""}
}

func errAppOnlyOBO(clientID string) *aadError {
	return &aadError{400, "invalid_grant", 7000114, fmt.Sprintf("Application '%s' is not allowed to make application on-behalf-of calls.", clientID), "", ""}
}

func (e *Emulator) errResourceNotFound(res string) *aadError {
	return &aadError{400, "invalid_resource", 500011, fmt.Sprintf("The resource principal named %s was not found in the tenant named %s. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant.", res, e.tenant), "", ""}
}

func errScopeNotExist(scope string) *aadError {
	return &aadError{400, "invalid_scope", 70011, fmt.Sprintf("The provided value for the input parameter 'scope' is not valid. The scope '%s' does not exist.", scope), "", ""}
}

func errScopeFormat(raw string) *aadError {
	return &aadError{400, "invalid_scope", 70011, fmt.Sprintf("The provided request must include a 'scope' input parameter. The provided value for the input parameter 'scope' is not valid. The scope %s is not valid. The scope format is invalid. Scope must be in a valid URI form <https://example/scope> or a valid Guid <guid/scope>.", raw), "", ""}
}

func errScopeDefaultMixed(raw string) *aadError {
	return &aadError{400, "invalid_scope", 70011, fmt.Sprintf("The provided value for the input parameter 'scope' is not valid. The scope %s is not valid. static scope limit exceeded.", raw), "", ""}
}

func errMultipleResources(raw string) *aadError {
	return &aadError{400, "invalid_scope", 28000, fmt.Sprintf("Provided value for the input parameter scope is not valid because it contains more than one resource. Scope %s is not valid.", raw), "", ""}
}

func errClientCredentialsScope(raw string) *aadError {
	return &aadError{400, "invalid_scope", 1002012, fmt.Sprintf("The provided value for scope %s is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).", raw), "", ""}
}

func errConsentRequired(clientID, appName string) *aadError {
	return &aadError{400, "invalid_grant", 65001, fmt.Sprintf("The user or administrator has not consented to use the application with ID '%s' named '%s'. Send an interactive authorization request for this user and resource.", clientID, appName), "consent_required", ""}
}

func errMFARequired(resourceAppID, claims string) *aadError {
	return &aadError{400, "invalid_grant", 50076, fmt.Sprintf("Due to a configuration change made by your administrator, or because you moved to a new location, you must use multi-factor authentication to access '%s'.", resourceAppID), "basic_action", claims}
}

func errBlockedByCA(claims string) *aadError {
	return &aadError{400, "invalid_grant", 53003, "Access has been blocked by Conditional Access policies. The access policy does not allow token issuance.", "", claims}
}

func errRefreshExpired(issued time.Time, inactive time.Duration) *aadError {
	return &aadError{400, "invalid_grant", 700082, fmt.Sprintf("The refresh token has expired due to inactivity. The token was issued on %s and was inactive for %s.", dotnetTime(issued), dotnetSpan(inactive)), "bad_token", ""}
}

func errRefreshRevoked(issued, validFrom time.Time) *aadError {
	return &aadError{400, "invalid_grant", 50173, fmt.Sprintf("The provided grant has expired due to it being revoked, a fresh auth token is needed. The user might have changed or reset their password. The grant was issued on '%s' and the TokensValidFrom date (before which tokens are not valid) for this user is '%s'.", dotnetTime(issued), dotnetTime(validFrom)), "", ""}
}

func errRefreshMalformed() *aadError {
	return &aadError{400, "invalid_grant", 70000, "Transmission data parser failure: Refresh Token is malformed or invalid.", "", ""}
}

// errGrantInvalid covers a refresh token presented by another client and, in strict rotation
// mode, a refresh token that was already redeemed (real Entra would still accept the latter).
func errGrantInvalid() *aadError {
	return &aadError{400, "invalid_grant", 70000, "Provided grant is invalid or malformed.", "", ""}
}

func errCodeMalformed() *aadError {
	return &aadError{400, "invalid_grant", 9002313, "Invalid request. Request is malformed or invalid.", "", ""}
}

func errCodeRedeemed() *aadError {
	return &aadError{400, "invalid_grant", 54005, "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token.", "", ""}
}

func errCodeExpired() *aadError {
	return &aadError{400, "invalid_grant", 70008, "The provided authorization code or refresh token has expired due to inactivity. Send a new interactive authorization request for this user and resource.", "", ""}
}

func errPKCEMismatch() *aadError {
	return &aadError{400, "invalid_grant", 501481, "The Code_Verifier does not match the code_challenge supplied in the authorization request.", "", ""}
}

func errRedirectMismatch(got, want string) *aadError {
	return &aadError{400, "invalid_grant", 500112, fmt.Sprintf("The reply address '%s' does not match the reply address '%s' provided when requesting Authorization code.", got, want), "", ""}
}

func errTransient() *aadError {
	return &aadError{503, "temporarily_unavailable", 90033, "A transient error has occurred. Please try again.", "", ""}
}

// Authorize-endpoint errors (rendered as a page or sent back to the redirect URI).

func errRedirectNotRegistered(uri, clientID string) *aadError {
	return &aadError{400, "invalid_request", 50011, fmt.Sprintf("The redirect URI '%s' specified in the request does not match the redirect URIs configured for the application '%s'. Make sure the redirect URI sent in the request matches one added to your application in the Azure portal. Navigate to https://aka.ms/redirectUriMismatchError to learn more about how to fix this.", uri, clientID), "", ""}
}

func errNoReplyAddress() *aadError {
	return &aadError{400, "invalid_request", 900971, "No reply address provided.", "", ""}
}

func errLoginRequired() *aadError {
	return &aadError{400, "login_required", 50058, "A silent sign-in request was sent but no user is signed in. The cookies used to represent the user's session were not sent in the request to Azure AD. This can happen if the user is using Internet Explorer or Edge, and the web app sending the silent sign-in request is in different IE security zone than the Azure AD endpoint (login.microsoftonline.com).", "", ""}
}

func errUnsupportedResponseType(rt string) *aadError {
	return &aadError{400, "unsupported_response_type", 70005, fmt.Sprintf("The app returned an unsupported response type '%s'. This emulator issues authorization codes only (response_type=code).", rt), "", ""}
}

func errUnsupportedResponseMode(m string) *aadError {
	return &aadError{400, "invalid_request", 70007, fmt.Sprintf("The application returned an unsupported value '%s' for the response_mode parameter.", m), "", ""}
}

func errInvalidCodeChallengeMethod() *aadError {
	return &aadError{400, "invalid_request", 50149, "Invalid Code_Challenge_method parameter.", "", ""}
}

func errAdminConsentRequired(appName string) *aadError {
	return &aadError{403, "access_denied", 90094, fmt.Sprintf("%s needs permission to access resources in your organization that only an admin can grant. Please ask an admin to grant permission to this app before you can use it.", appName), "", ""}
}

var errorPage = template.Must(template.New("err").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in - entraemu</title>
<style>body{font-family:Segoe UI,system-ui,sans-serif;max-width:42rem;margin:3rem auto;padding:0 1rem}code{word-break:break-all}</style>
</head><body><h1>Sorry, but we're having trouble signing you in.</h1>
<p><code>{{.Description}}</code></p>
<p>Correlation ID: {{.Correlation}}<br>Timestamp: {{.Timestamp}}</p>
<p><small>entraemu — a local Entra ID emulator for development. Not Microsoft.</small></p>
</body></html>`))

// writeErrorPage renders an authorize-endpoint error the user sees (no trusted redirect URI).
func (e *Emulator) writeErrorPage(w http.ResponseWriter, r *http.Request, a *aadError) {
	body, _ := e.errorBody(r, a)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(a.status)
	_ = errorPage.Execute(w, map[string]string{
		"Description": fmt.Sprintf("AADSTS%d: %s", a.code, a.msg),
		"Correlation": body.CorrelationID, "Timestamp": body.Timestamp,
	})
}

// handleErrorPage is the target of error_uri links.
func (e *Emulator) handleErrorPage(w http.ResponseWriter, r *http.Request) {
	code := r.URL.Query().Get("code")
	if _, err := strconv.Atoi(code); err != nil {
		code = "?"
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = errorPage.Execute(w, map[string]string{
		"Description": "Error code AADSTS" + code + ": see https://login.microsoftonline.com/error?code=" + code + " for the real description.",
		"Correlation": correlationID(r), "Timestamp": e.now().UTC().Format(entraTimestamp),
	})
}
