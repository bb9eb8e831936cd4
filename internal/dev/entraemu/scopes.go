package entraemu

import (
	"slices"
	"strings"
)

// resourceInfo is a resource (API) tokens can be issued for: a configured Resource or an App that
// exposes an API.
type resourceInfo struct {
	appID   string
	uris    []string
	scopes  map[string]Scope // lower-case value -> scope
	roles   []string
	version int
	name    string
	isGraph bool
}

func resourceFromConfig(r *Resource) *resourceInfo {
	ri := &resourceInfo{appID: r.AppID, uris: r.IdentifierURIs, roles: r.AppRoles,
		version: r.AccessTokenVersion, name: r.Name, scopes: map[string]Scope{}}
	for _, s := range r.Scopes {
		ri.scopes[strings.ToLower(s.Value)] = s
	}
	if ri.version == 0 {
		ri.version = 1
	}
	if ri.name == "" {
		ri.name = firstOr(r.IdentifierURIs, r.AppID)
	}
	ri.isGraph = strings.EqualFold(r.AppID, GraphAppID)
	return ri
}

func resourceFromApp(a *App) *resourceInfo {
	ri := &resourceInfo{appID: a.ClientID, uris: a.IdentifierURIs, version: a.AccessTokenVersion,
		name: a.Name, scopes: map[string]Scope{}}
	for _, s := range a.ExposedScopes {
		ri.scopes[strings.ToLower(s)] = Scope{Value: s}
	}
	if ri.version == 0 {
		ri.version = 1
	}
	if ri.name == "" {
		ri.name = a.ClientID
	}
	return ri
}

func firstOr(s []string, def string) string {
	if len(s) > 0 {
		return s[0]
	}
	return def
}

// canonicalURI is the identifier fully qualified scopes are written with.
func (ri *resourceInfo) canonicalURI() string { return firstOr(ri.uris, ri.appID) }

// matches reports whether id (app id or identifier URI, case-insensitive) names this resource.
func (ri *resourceInfo) matches(id string) bool {
	id = strings.TrimRight(id, "/")
	if strings.EqualFold(id, ri.appID) {
		return true
	}
	for _, u := range ri.uris {
		if strings.EqualFold(id, strings.TrimRight(u, "/")) {
			return true
		}
	}
	return false
}

func (e *Emulator) resourceByID(id string) *resourceInfo {
	for _, ri := range e.resources {
		if ri.matches(id) {
			return ri
		}
	}
	return nil
}

var oidcScopes = map[string]bool{"openid": true, "profile": true, "email": true, "offline_access": true}

// scopeRequest is a parsed scope parameter: OpenID scopes plus at most one resource's scopes.
type scopeRequest struct {
	raw    string
	oidc   map[string]bool
	res    *resourceInfo
	resID  string   // the resource identifier as the client wrote it (a v1 token's aud)
	values []string // canonical scope values; empty with dflt
	dflt   bool     // <resource>/.default
}

func (s *scopeRequest) has(oidc string) bool { return s.oidc[oidc] }

// parseScopes validates a v2 scope parameter the way Entra does.
func (e *Emulator) parseScopes(raw string) (*scopeRequest, *aadError) {
	sr := &scopeRequest{raw: raw, oidc: map[string]bool{}}
	var others []string
	for _, s := range strings.Fields(raw) {
		if oidcScopes[strings.ToLower(s)] {
			sr.oidc[strings.ToLower(s)] = true
			continue
		}
		resID, value := GraphURI, s // a bare scope means Microsoft Graph, as in Entra
		if i := strings.LastIndex(s, "/"); i >= 0 {
			resID, value = strings.TrimRight(s[:i], "/"), s[i+1:]
			if resID == "" || value == "" {
				return nil, errScopeFormat(raw)
			}
		}
		ri := e.resourceByID(resID)
		if ri == nil {
			if !strings.Contains(s, "/") {
				return nil, errScopeFormat(raw)
			}
			return nil, e.errResourceNotFound(resID)
		}
		if sr.res != nil && sr.res != ri {
			return nil, errMultipleResources(raw)
		}
		sr.res, sr.resID = ri, resID
		if value == ".default" {
			sr.dflt = true
			continue
		}
		sc, ok := ri.scopes[strings.ToLower(value)]
		if !ok {
			return nil, errScopeNotExist(s)
		}
		if !slices.Contains(others, sc.Value) {
			others = append(others, sc.Value)
		}
	}
	if sr.dflt && len(others) > 0 {
		return nil, errScopeDefaultMixed(raw)
	}
	sr.values = others
	return sr, nil
}

// requiredFor returns the app's static permissions on a resource (what .default means).
func (a *App) requiredFor(ri *resourceInfo) []string {
	for id, scopes := range a.RequiredPermissions {
		if ri.matches(id) {
			return scopes
		}
	}
	return nil
}

func (a *App) rolesFor(ri *resourceInfo) []string {
	for id, roles := range a.ApplicationPermissions {
		if ri.matches(id) {
			return roles
		}
	}
	return nil
}

func consentKey(userKey, clientID string) string {
	return strings.ToLower(userKey) + "|" + strings.ToLower(clientID)
}

func fqScope(ri *resourceInfo, value string) string {
	return strings.ToLower(ri.appID + "/" + value)
}

// consented reports whether user has (or an admin has for everyone) consented to scope on
// resource ri for app.
func (e *Emulator) consented(u *User, app *App, ri *resourceInfo, value string) bool {
	if app.PreConsented && slices.ContainsFunc(app.requiredFor(ri), func(s string) bool { return strings.EqualFold(s, value) }) {
		return true
	}
	// An app may always call its own API on the user's behalf (Office SSO, NAA).
	if strings.EqualFold(ri.appID, app.ClientID) {
		return true
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.consents[consentKey(u.Key, app.ClientID)][fqScope(ri, value)]
}

// grantConsent records user consent given on the authorize page. Admin-only scopes are refused.
func (e *Emulator) grantConsent(u *User, app *App, sr *scopeRequest) (adminNeeded bool) {
	if sr.res == nil {
		return false
	}
	values := sr.values
	if sr.dflt {
		values = app.requiredFor(sr.res)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	k := consentKey(u.Key, app.ClientID)
	if e.consents[k] == nil {
		e.consents[k] = map[string]bool{}
	}
	for _, v := range values {
		sc := sr.res.scopes[strings.ToLower(v)]
		if sc.AdminConsentOnly {
			if !(app.PreConsented && slices.ContainsFunc(app.requiredFor(sr.res), func(s string) bool { return strings.EqualFold(s, v) })) {
				adminNeeded = true
			}
			continue
		}
		e.consents[k][fqScope(sr.res, v)] = true
	}
	return adminNeeded
}

// delegatedGrant decides the scopes a user token gets. With no resource scope the token is for
// Microsoft Graph carrying only the OpenID scopes, as Entra does.
func (e *Emulator) delegatedGrant(u *User, app *App, sr *scopeRequest) (*resourceInfo, []string, *aadError) {
	ri := sr.res
	if ri == nil {
		if e.graph == nil {
			return nil, nil, errScopeFormat(sr.raw)
		}
		return e.graph, nil, nil
	}
	values := sr.values
	if sr.dflt {
		values = app.requiredFor(ri)
		if len(values) == 0 && !strings.EqualFold(ri.appID, app.ClientID) {
			return nil, nil, errConsentRequired(app.ClientID, appName(app))
		}
	}
	for _, v := range values {
		if !e.consented(u, app, ri, v) {
			return nil, nil, errConsentRequired(app.ClientID, appName(app))
		}
	}
	return ri, values, nil
}

func appName(a *App) string {
	if a.Name != "" {
		return a.Name
	}
	return a.ClientID
}

// responseScope is the scope field of a token response: fully qualified resource scopes, then the
// OpenID scopes that were asked for (never offline_access, which Entra does not echo).
func responseScope(ri *resourceInfo, values []string, sr *scopeRequest) string {
	out := make([]string, 0, len(values)+3)
	for _, v := range values {
		out = append(out, ri.canonicalURI()+"/"+v)
	}
	for _, o := range []string{"openid", "profile", "email"} {
		if sr.has(o) {
			out = append(out, o)
		}
	}
	return strings.Join(out, " ")
}

// scpClaim is the scp claim: short values; Graph tokens also carry the OpenID scopes.
func scpClaim(ri *resourceInfo, values []string, sr *scopeRequest) string {
	out := slices.Clone(values)
	if ri.isGraph && sr != nil {
		for _, o := range []string{"openid", "profile", "email"} {
			if sr.has(o) {
				out = append(out, o)
			}
		}
	}
	return strings.Join(out, " ")
}
