package entraemu

import (
	"html/template"
	"net/http"
	"slices"
	"strings"
)

// After the user picker, an interactive sign-in goes through the steps Entra would show: multi-factor
// authentication when a policy or a claims challenge asks for it, then consent when the app lacks some of the
// requested permissions (or prompt=consent). Each step is its own page that says what it is, and posts back to
// the same authorize URL with what was done so far (user, mfa=approved, consent=accepted).

// Form fields of the steps.
const (
	stepMFAField     = "mfa"
	stepMFADone      = "approved"
	stepConsentField = "consent"
	stepConsentDone  = "accepted"
)

// interactiveSignIn runs the steps for u, then completes the sign-in.
func (e *Emulator) interactiveSignIn(w http.ResponseWriter, r *http.Request, ar *authzRequest, u *User) {
	form := r.PostForm
	if form.Get(stepConsentField) == "declined" {
		e.redirectError(w, r, ar, errConsentDeclined())
		return
	}
	if e.mfaNeeded(ar, u) && form.Get(stepMFAField) != stepMFADone {
		e.renderStep(w, r, ar, u, stepMFA)
		return
	}
	if e.consentNeeded(ar, u) && form.Get(stepConsentField) != stepConsentDone {
		e.renderStep(w, r, ar, u, stepConsent)
		return
	}
	e.completeInteractive(w, r, ar, u)
}

// mfaNeeded: a claims challenge (MFA, CAE) or an mfa_required fault for u or everyone.
func (e *Emulator) mfaNeeded(ar *authzRequest, u *User) bool {
	if _, challenge := requestClaims(ar.p.Get("claims")); challenge {
		return true
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, k := range []string{strings.ToLower(u.Key), ""} {
		if st := e.faults[k]; st != nil && st.f.Kind == FaultMFARequired {
			return true
		}
	}
	return false
}

// consentNeeded: prompt=consent, a consent_required fault, or a requested permission not consented yet.
func (e *Emulator) consentNeeded(ar *authzRequest, u *User) bool {
	if ar.p.Get("prompt") == "consent" {
		return true
	}
	e.mu.Lock()
	st, all := e.faults[strings.ToLower(u.Key)], e.faults[""]
	e.mu.Unlock()
	for _, s := range []*faultState{st, all} {
		if s != nil && s.f.Kind == FaultConsentRequired {
			return true
		}
	}
	_, _, a := e.delegatedGrant(u, ar.app, ar.sr)
	return a != nil && a.code == 65001
}

// grantCombinedConsent is knownClientApplications: when the user consents client to a middle tier's API and the
// middle tier lists client as a known client, the middle tier's own RequiredPermissions are consented too.
func (e *Emulator) grantCombinedConsent(u *User, client *App, sr *scopeRequest) {
	mid := e.middleTierOf(client, sr)
	if mid == nil {
		return
	}
	for id, scopes := range mid.RequiredPermissions {
		ri := e.resourceByID(id)
		if ri == nil || len(scopes) == 0 {
			continue
		}
		e.grantConsent(u, mid, &scopeRequest{oidc: map[string]bool{}, res: ri, resID: id, values: scopes})
	}
}

// middleTierOf is the app whose API sr asks for, when it lists client among its known client applications.
func (e *Emulator) middleTierOf(client *App, sr *scopeRequest) *App {
	if sr == nil || sr.res == nil {
		return nil
	}
	mid := e.appByID(sr.res.appID)
	if mid == nil || mid == client || !slices.ContainsFunc(mid.KnownClientApplications, func(id string) bool {
		return strings.EqualFold(id, client.ClientID)
	}) {
		return nil
	}
	return mid
}

func errConsentDeclined() *aadError {
	return &aadError{400, "access_denied", 65004, "User declined to consent to access the app.", "consent_required", ""}
}

type step string

const (
	stepMFA     step = "mfa"
	stepConsent step = "consent"
)

// stepField is one hidden field a step's form posts back.
type stepField struct{ Name, Value string }

// renderStep shows the MFA or consent page for u.
func (e *Emulator) renderStep(w http.ResponseWriter, r *http.Request, ar *authzRequest, u *User, s step) {
	fields := []stepField{{"user", u.Key}}
	if s == stepConsent && e.mfaNeeded(ar, u) {
		fields = append(fields, stepField{stepMFAField, stepMFADone})
	}
	data := map[string]any{
		"Step": string(s), "User": u.Name, "UPN": u.UPN, "App": appName(ar.app), "ClientID": ar.app.ClientID,
		"Action": r.URL.Path + "?" + ar.p.Encode(), "Fields": fields,
		"Scopes": strings.Fields(ar.p.Get("scope")),
	}
	if ar.p.Get("claims") != "" {
		data["Claims"] = ar.p.Get("claims")
	}
	if mid := e.middleTierOf(ar.app, ar.sr); mid != nil && s == stepConsent {
		var also []string
		for id, scopes := range mid.RequiredPermissions {
			for _, sc := range scopes {
				also = append(also, strings.TrimRight(id, "/")+"/"+sc)
			}
		}
		slices.Sort(also)
		data["MiddleTier"], data["AlsoScopes"] = appName(mid), also
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store, no-cache")
	w.Header().Set("X-Frame-Options", "DENY")
	_ = stepPage.Execute(w, data)
}

var stepPage = template.Must(template.New("step").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>{{if eq .Step "mfa"}}Verify your identity{{else}}Permissions requested{{end}} - entraemu</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font-family:Segoe UI,system-ui,sans-serif;background:#f2f2f2;margin:0}
main{max-width:28rem;margin:3rem auto;background:#fff;padding:2rem;box-shadow:0 2px 6px rgba(0,0,0,.2)}
button{padding:.5rem 1.2rem;margin-right:.5rem;font-size:1rem;cursor:pointer}small{color:#666}code{word-break:break-all}
</style></head><body><main data-entraemu-step="{{.Step}}">
<p><small>{{.User}} ({{.UPN}})</small></p>
{{if eq .Step "mfa"}}
<h1>Verify your identity</h1>
<p>This is the emulator's <b>multi-factor authentication step</b>: a Conditional Access policy or a claims
challenge from <b>{{.App}}</b> asks for a second factor. Approving stands for answering the authenticator prompt;
the token will carry <code>amr: ["pwd","mfa"]</code>.</p>
{{with .Claims}}<p><small>Claims challenge: <code>{{.}}</code></small></p>{{end}}
<form method="POST" action="{{.Action}}">{{range .Fields}}<input type="hidden" name="{{.Name}}" value="{{.Value}}">{{end}}
<input type="hidden" name="mfa" value="approved"><button type="submit" id="approve" autofocus>Approve sign-in</button></form>
{{else}}
<h1>Permissions requested</h1>
<p>This is the emulator's <b>consent step</b>. <b>{{.App}}</b> (<code>{{.ClientID}}</code>) wants to:</p>
<ul>{{range .Scopes}}<li><code>{{.}}</code></li>{{end}}</ul>
{{with .MiddleTier}}<p>Because <b>{{.}}</b> lists this app in <code>knownClientApplications</code>, accepting also
consents <b>{{.}}</b>'s own permissions (combined consent):</p>
<ul>{{range $.AlsoScopes}}<li><code>{{.}}</code></li>{{end}}</ul>{{end}}
<form method="POST" action="{{.Action}}">{{range .Fields}}<input type="hidden" name="{{.Name}}" value="{{.Value}}">{{end}}
<button type="submit" name="consent" value="accepted" id="accept" autofocus>Accept</button>
<button type="submit" name="consent" value="declined" id="decline">Cancel</button></form>
{{end}}
<p><small>entraemu — local Entra ID emulator. Not Microsoft.</small></p>
</main></body></html>`))
