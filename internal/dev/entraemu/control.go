package entraemu

import (
	"encoding/json"
	"fmt"
	"html/template"
	"maps"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The control API (/_emulator/...) is for humans and non-Go tests. It mints tokens and changes
// behaviour, so like the rest of the emulator it must only ever be reachable on loopback.
func (e *Emulator) controlRoutes(m *http.ServeMux) {
	m.HandleFunc("GET /{$}", e.handleIndex)
	m.HandleFunc("GET /_emulator/{$}", e.handleIndex)
	m.HandleFunc("POST /_emulator/token", e.handleControlToken)
	m.HandleFunc("GET /_emulator/faults", e.handleListFaults)
	m.HandleFunc("PUT /_emulator/faults/{user}", e.handlePutFault)
	m.HandleFunc("DELETE /_emulator/faults", e.handleClearFaults)
	m.HandleFunc("DELETE /_emulator/faults/{user}", e.handleClearFaults)
	m.HandleFunc("GET /_emulator/counters", e.handleCounters)
	m.HandleFunc("POST /_emulator/counters/reset", e.handleResetCounters)
	m.HandleFunc("POST /_emulator/revoke/{user}", e.handleRevoke)
	m.HandleFunc("GET /_emulator/apps", e.handleListApps) // directory.go
	m.HandleFunc("GET /_emulator/users", e.handleListUsers)
}

func writeControlJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func controlError(w http.ResponseWriter, status int, format string, args ...any) {
	writeControlJSON(w, status, map[string]string{"error": fmt.Sprintf(format, args...)})
}

// parseDuration accepts Go durations ("2s", "1m30s") or plain seconds ("5", "0.5").
func parseDuration(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		return time.Duration(f * float64(time.Second)), nil
	}
	return time.ParseDuration(s)
}

// handleControlToken: POST /_emulator/token?user=adele[&audience=...][&lifetime=...][&client_id=...]
// [&scope=a b][&version=1|2][&mfa=true] returns {"access_token": ...}: an SSO token for the add-in API.
func (e *Emulator) handleControlToken(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if err := r.ParseForm(); err == nil {
		q = r.Form
	}
	o := MintOptions{Audience: q.Get("audience"), ClientID: q.Get("client_id"), Scopes: strings.Fields(q.Get("scope"))}
	var err error
	if o.Lifetime, err = parseDuration(q.Get("lifetime")); err != nil {
		controlError(w, http.StatusBadRequest, "bad lifetime: %v", err)
		return
	}
	if v := q.Get("version"); v != "" {
		if o.Version, err = strconv.Atoi(v); err != nil {
			controlError(w, http.StatusBadRequest, "bad version %q", v)
			return
		}
	}
	o.MFA, _ = strconv.ParseBool(q.Get("mfa"))
	user := q.Get("user")
	if e.userByKey(user) == nil {
		controlError(w, http.StatusNotFound, "unknown user %q", user)
		return
	}
	tok, exp, err := e.mint(r, user, o)
	if err != nil {
		controlError(w, http.StatusBadRequest, "%v", err)
		return
	}
	writeControlJSON(w, http.StatusOK, map[string]any{
		"access_token": tok, "token_type": "Bearer", "expires_in": int64(exp.Sub(e.now()).Seconds()),
	})
}

// faultJSON is the control API's fault body.
type faultJSON struct {
	Kind       FaultKind `json:"kind"`
	Delay      string    `json:"delay,omitempty"`
	RetryAfter string    `json:"retry_after,omitempty"`
	Claims     string    `json:"claims,omitempty"`
	Count      int       `json:"count,omitempty"`
}

func (e *Emulator) handlePutFault(w http.ResponseWriter, r *http.Request) {
	user := r.PathValue("user")
	if user != "*" && e.userByKey(user) == nil {
		controlError(w, http.StatusNotFound, "unknown user %q (use * for every user)", user)
		return
	}
	var fj faultJSON
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&fj); err != nil {
		controlError(w, http.StatusBadRequest, "bad fault body: %v", err)
		return
	}
	if !fj.Kind.valid() {
		controlError(w, http.StatusBadRequest, "unknown fault kind %q", fj.Kind)
		return
	}
	f := Fault{Kind: fj.Kind, Claims: fj.Claims, Count: fj.Count}
	var err error
	if f.Delay, err = parseDuration(fj.Delay); err != nil {
		controlError(w, http.StatusBadRequest, "bad delay: %v", err)
		return
	}
	if f.RetryAfter, err = parseDuration(fj.RetryAfter); err != nil {
		controlError(w, http.StatusBadRequest, "bad retry_after: %v", err)
		return
	}
	if f.Count < 0 || f.Delay < 0 || f.RetryAfter < 0 {
		controlError(w, http.StatusBadRequest, "count, delay and retry_after must not be negative")
		return
	}
	e.SetFault(user, f)
	w.WriteHeader(http.StatusNoContent)
}

func (e *Emulator) handleListFaults(w http.ResponseWriter, r *http.Request) {
	out := map[string]faultJSON{}
	for k, f := range e.Faults() {
		if k == "" {
			k = "*"
		}
		fj := faultJSON{Kind: f.Kind, Claims: f.Claims, Count: f.Count}
		if f.Delay > 0 {
			fj.Delay = f.Delay.String()
		}
		if f.RetryAfter > 0 {
			fj.RetryAfter = f.RetryAfter.String()
		}
		out[k] = fj
	}
	writeControlJSON(w, http.StatusOK, out)
}

func (e *Emulator) handleClearFaults(w http.ResponseWriter, r *http.Request) {
	if u := r.PathValue("user"); u != "" {
		if u == "*" {
			u = ""
		}
		e.mu.Lock()
		delete(e.faults, strings.ToLower(u))
		e.mu.Unlock()
	} else {
		e.ClearFaults()
	}
	w.WriteHeader(http.StatusNoContent)
}

func (e *Emulator) handleCounters(w http.ResponseWriter, r *http.Request) {
	writeControlJSON(w, http.StatusOK, e.Counters())
}

func (e *Emulator) handleResetCounters(w http.ResponseWriter, r *http.Request) {
	e.ResetCounters()
	w.WriteHeader(http.StatusNoContent)
}

func (e *Emulator) handleRevoke(w http.ResponseWriter, r *http.Request) {
	if e.userByKey(r.PathValue("user")) == nil {
		controlError(w, http.StatusNotFound, "unknown user %q", r.PathValue("user"))
		return
	}
	e.RevokeRefreshTokens(r.PathValue("user"))
	w.WriteHeader(http.StatusNoContent)
}

var indexPage = template.Must(template.New("index").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>entraemu</title>
<style>body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}
td,th{text-align:left;padding:.2rem .6rem;border-bottom:1px solid #ddd}code{background:#f4f4f4;padding:0 .2rem}</style>
</head><body>
<h1>entraemu — local Microsoft Entra ID emulator</h1>
<p>Tenant <code>{{.Tenant}}</code> (<code>{{.Domain}}</code>). Development and tests only: it mints real, signed tokens.</p>
<h2>Endpoints</h2><ul>
<li>Authority: <code>{{.Base}}/{{.Tenant}}</code></li>
<li>Discovery: <a href="{{.Base}}/{{.Tenant}}/v2.0/.well-known/openid-configuration">v2</a>, <a href="{{.Base}}/{{.Tenant}}/.well-known/openid-configuration">v1</a></li>
<li>Keys: <a href="{{.Base}}/{{.Tenant}}/discovery/v2.0/keys">{{.Base}}/{{.Tenant}}/discovery/v2.0/keys</a></li></ul>
<h2>Users</h2><table><tr><th>key</th><th>name</th><th>UPN</th><th>object id</th></tr>
{{range .Users}}<tr><td><code>{{.Key}}</code></td><td>{{.Name}}</td><td>{{.UPN}}</td><td><code>{{.ObjectID}}</code></td></tr>{{end}}</table>
<h2>Apps</h2><table><tr><th>name</th><th>client id</th><th>identifier URIs</th><th>scopes</th><th>redirect URIs</th></tr>
{{range .Apps}}<tr><td>{{.Name}}{{if not .Secret}} (public client){{end}}</td><td><code>{{.ClientID}}</code></td><td>{{range .IdentifierURIs}}<code>{{.}}</code> {{end}}</td><td>{{range .ExposedScopes}}<code>{{.}}</code> {{end}}</td><td>{{range .RedirectURIs}}web <code>{{.}}</code><br>{{end}}{{range .SPARedirectURIs}}spa <code>{{.}}</code><br>{{end}}</td></tr>{{end}}</table>
<p>As JSON: <a href="{{.Base}}/_emulator/apps">/_emulator/apps</a>, <a href="{{.Base}}/_emulator/users">/_emulator/users</a>. Loopback redirect URIs match whatever their port.</p>
<h2>Mint an SSO token (what Office.auth.getAccessToken returns)</h2>
<pre>curl -sk -X POST '{{.Base}}/_emulator/token?user=adele'
curl -sk -X POST '{{.Base}}/_emulator/token?user=megan&amp;lifetime=10m&amp;mfa=true'</pre>
<h2>Faults and counters</h2>
<pre>curl -sk -X PUT {{.Base}}/_emulator/faults/adele -d '{"kind":"mfa_required"}'
curl -sk -X PUT '{{.Base}}/_emulator/faults/*' -d '{"kind":"throttled","retry_after":"5s","count":3}'
curl -sk -X DELETE {{.Base}}/_emulator/faults
curl -sk {{.Base}}/_emulator/counters
curl -sk -X POST {{.Base}}/_emulator/counters/reset
curl -sk {{.Base}}/_emulator/apps      # client ids, redirect URIs (web, spa), permissions
curl -sk {{.Base}}/_emulator/users</pre>
<p>Fault kinds: mfa_required, consent_required, refresh_token_expired, refresh_token_revoked,
blocked_by_conditional_access, down, slow (delay), throttled (retry_after), connection_reset, bad_gateway, insufficient_claims.</p>
</body></html>`))

func (e *Emulator) handleIndex(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = indexPage.Execute(w, map[string]any{
		"Tenant": e.tenant, "Domain": e.cfg.TenantDomain, "Base": e.baseURL(r),
		"Users": e.cfg.Users, "Apps": e.cfg.Apps,
	})
}

// Counters is a snapshot of what the emulator was asked to do.
//
// ByGrant counts token requests per grant ("obo", "refresh_token", "authorization_code",
// "client_credentials"), successful or not; ByUserGrant counts those whose user was identified
// (user key -> grant -> n). TokenRequests counts every token endpoint request, Errors every token
// endpoint request that did not get a token (error bodies, throttling, resets), Faults every
// injected fault that fired.
type Counters struct {
	ByGrant       map[string]int            `json:"by_grant"`
	ByUserGrant   map[string]map[string]int `json:"by_user_grant"`
	Discovery     int                       `json:"discovery"`
	JWKS          int                       `json:"jwks"`
	Authorize     int                       `json:"authorize"`
	TokenRequests int                       `json:"token_requests"`
	Errors        int                       `json:"errors"`
	Faults        int                       `json:"faults"`
}

type counterState struct {
	mu sync.Mutex
	c  Counters
}

func (s *counterState) add(f func(*Counters)) {
	s.mu.Lock()
	f(&s.c)
	s.mu.Unlock()
}

func (s *counterState) reset() {
	s.mu.Lock()
	s.c = Counters{ByGrant: map[string]int{}, ByUserGrant: map[string]map[string]int{}}
	s.mu.Unlock()
}

func (s *counterState) grant(grant string) {
	s.add(func(c *Counters) { c.ByGrant[grant]++ })
}

func (s *counterState) userGrant(user, grant string) {
	s.add(func(c *Counters) {
		m := c.ByUserGrant[user]
		if m == nil {
			m = map[string]int{}
			c.ByUserGrant[user] = m
		}
		m[grant]++
	})
}

// Counters returns a snapshot (deep copy) of the counters.
func (e *Emulator) Counters() Counters {
	e.counters.mu.Lock()
	defer e.counters.mu.Unlock()
	c := e.counters.c
	c.ByGrant = maps.Clone(c.ByGrant)
	c.ByUserGrant = make(map[string]map[string]int, len(e.counters.c.ByUserGrant))
	for u, m := range e.counters.c.ByUserGrant {
		c.ByUserGrant[u] = maps.Clone(m)
	}
	return c
}

// ResetCounters sets every counter to zero.
func (e *Emulator) ResetCounters() { e.counters.reset() }
