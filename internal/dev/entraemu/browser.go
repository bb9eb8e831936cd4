package entraemu

import (
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// What the browser sees around the authorize endpoint: the sign-in session cookie, the demo-user
// picker, the ways a response travels back (query, fragment, form_post) and logout.

// sessionCookie plays the role of Entra's ESTSAUTH cookie: the browser's sign-in session.
const sessionCookie = "entraemu_session"

type session struct {
	userKey  string
	sid      string
	amr      []string
	authTime time.Time
}

func (e *Emulator) currentSession(r *http.Request) *session {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.sessions[hashKey(c.Value)]
}

var formPostPage = template.Must(template.New("fp").Parse(`<!doctype html>
<html><head><title>Working...</title></head>
<body onload="document.forms[0].submit()"><form method="POST" action="{{.Action}}">
{{range $k, $v := .Fields}}<input type="hidden" name="{{$k}}" value="{{$v}}">
{{end}}<noscript><p>Script is disabled. Click Submit to continue.</p><input type="submit" value="Submit"></noscript>
</form></body></html>`))

// respond delivers parameters per response_mode: query, fragment or an auto-submitting form_post.
func respond(w http.ResponseWriter, r *http.Request, ar *authzRequest, v url.Values) {
	w.Header().Set("Cache-Control", "no-store, no-cache")
	switch ar.mode {
	case "form_post":
		fields := map[string]string{}
		for k := range v {
			fields[k] = v.Get(k)
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_ = formPostPage.Execute(w, map[string]any{"Action": template.URL(ar.redirect), "Fields": fields})
	case "fragment":
		http.Redirect(w, r, ar.redirect+"#"+encodeOrdered(v), http.StatusFound)
	default:
		sep := "?"
		if strings.Contains(ar.redirect, "?") {
			sep = "&"
		}
		http.Redirect(w, r, ar.redirect+sep+encodeOrdered(v), http.StatusFound)
	}
}

// responseParamOrder is the order Entra writes redirect parameters in.
var responseParamOrder = []string{"code", "client_info", "error", "error_description", "error_uri", "state", "session_state"}

func encodeOrdered(v url.Values) string {
	var b strings.Builder
	for _, k := range responseParamOrder {
		if !v.Has(k) {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('&')
		}
		b.WriteString(url.QueryEscape(k) + "=" + url.QueryEscape(v.Get(k)))
	}
	return b.String()
}

// handleLogout is end_session: it forgets the browser session and only redirects to a
// post_logout_redirect_uri registered by some app (no open redirect).
func (e *Emulator) handleLogout(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(sessionCookie); err == nil {
		e.mu.Lock()
		delete(e.sessions, hashKey(c.Value))
		e.mu.Unlock()
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true})
	target := r.FormValue("post_logout_redirect_uri")
	if target != "" && e.registeredRedirect(target) {
		if st := r.FormValue("state"); st != "" {
			sep := "?"
			if strings.Contains(target, "?") {
				sep = "&"
			}
			target += sep + url.Values{"state": {st}}.Encode()
		}
		http.Redirect(w, r, target, http.StatusFound)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	fmt.Fprint(w, `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Signed out</title></head>`+
		`<body style="font-family:system-ui,sans-serif;max-width:40rem;margin:3rem auto"><h1>You signed out of your account</h1>`+
		`<p>It's a good idea to close all browser windows.</p><p><small>entraemu — local Entra ID emulator</small></p></body></html>`)
}

func (e *Emulator) registeredRedirect(u string) bool {
	for _, a := range e.apps {
		if _, ok := a.matchRedirect(u); ok {
			return true
		}
	}
	return false
}

var pickerPage = template.Must(template.New("picker").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in to your account - entraemu</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font-family:Segoe UI,system-ui,sans-serif;background:#f2f2f2;margin:0}
main{max-width:28rem;margin:3rem auto;background:#fff;padding:2rem;box-shadow:0 2px 6px rgba(0,0,0,.2)}
form{margin:.25rem 0}button{width:100%;text-align:left;padding:.6rem .8rem;border:1px solid #ccc;background:#fff;cursor:pointer;font-size:1rem}
button:hover,button.hint{border-color:#0067b8;background:#f0f6fc}small{color:#666}.err{color:#a80000}
</style></head><body><main>
<h1>Pick a demo user</h1>
<p><b>{{.App}}</b> wants to sign you in to <b>{{.Tenant}}</b>{{if .Scopes}} and access: <code>{{.Scopes}}</code>{{end}}.</p>
{{if .Error}}<p class="err">{{.Error}}</p>{{end}}
{{range .Users}}<form method="POST" action="{{$.Action}}">
<input type="hidden" name="user" value="{{.Key}}">
<button type="submit"{{if .Hint}} class="hint" autofocus{{end}}>{{.Name}}<br><small>{{.UPN}}</small></button>
</form>
{{end}}
<p><small>entraemu is a local Entra ID emulator for development. Picking a user signs them in; an MFA step
and a consent step follow when a policy or the requested permissions ask for them. Not Microsoft.</small></p>
</main></body></html>`))

type pickerUser struct {
	Key, Name, UPN string
	Hint           bool
}

// renderPicker shows one form button per demo user. The form posts user=<key> back to the same
// authorize URL, whose query carries the original request.
func (e *Emulator) renderPicker(w http.ResponseWriter, r *http.Request, ar *authzRequest, msg string) {
	hint := ar.p.Get("login_hint")
	users := make([]pickerUser, 0, len(e.cfg.Users))
	for _, u := range e.cfg.Users {
		users = append(users, pickerUser{Key: u.Key, Name: u.Name, UPN: u.UPN,
			Hint: hint != "" && (strings.EqualFold(hint, u.UPN) || strings.EqualFold(hint, u.Key))})
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store, no-cache")
	w.Header().Set("X-Frame-Options", "DENY")
	status := http.StatusOK
	if msg != "" {
		status = http.StatusBadRequest
	}
	w.WriteHeader(status)
	_ = pickerPage.Execute(w, map[string]any{
		"App": appName(ar.app), "Tenant": e.name + " (" + e.cfg.TenantDomain + ")", "Scopes": ar.p.Get("scope"),
		"Error": msg, "Users": users, "Action": r.URL.Path + "?" + ar.p.Encode(),
	})
}
