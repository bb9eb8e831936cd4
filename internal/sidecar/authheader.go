package sidecar

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"go.uber.org/zap"

	"github.com/tokeninjector/caddy-token-injector/internal/acquire"
	"github.com/tokeninjector/caddy-token-injector/internal/contract"
	"github.com/tokeninjector/caddy-token-injector/internal/entra"
	"github.com/tokeninjector/caddy-token-injector/internal/tokencache"
)

// AuthorizationHeaderResult is the answer of both AuthorizationHeader endpoints: Models/AuthorizationHeaderResult.cs,
// serialized camelCase as ASP.NET Core's web defaults do.
type AuthorizationHeaderResult struct {
	AuthorizationHeader string `json:"authorizationHeader"`
}

// serveAuthorizationHeader is Endpoints/AuthorizationHeaderEndpoint.cs: the authenticated route requires a
// valid caller (RequireAuthorization) and gets its On-Behalf-Of token, or the app's when the API or the override
// asks for RequestAppToken; the unauthenticated route gets the app's token (client credentials).
func (s *Server) serveAuthorizationHeader(w http.ResponseWriter, r *http.Request, name string, unauthenticated bool) {
	req := acquire.Request{Timeout: s.cfg.Timeout, ExpiryMargin: s.cfg.ExpiryMargin, AppOnly: unauthenticated}
	if !unauthenticated {
		id, raw, err := s.prove(r)
		if err != nil {
			s.fail(w, r, err, nil)
			return
		}
		req.Key = tokencache.Key{User: id.UserKey, Context: id.AuthContext}
		req.Assertion = raw
	}
	api, ok := s.apis[name]
	if !ok {
		s.refuse(w, r, contract.InvalidRequest(fmt.Sprintf("Not able to resolve '%s'.", clip(name))))
		return
	}
	req.Scopes, req.AppOnly = api.Scopes, req.AppOnly || api.RequestAppToken
	allow := s.cfg.Overrides.AuthorizationHeader
	if unauthenticated {
		allow = s.cfg.Overrides.AuthorizationHeaderUnauthenticated
	}
	o, err := parseOverrides(r.URL.Query())
	switch {
	case err != nil && allow:
		s.refuse(w, r, contract.InvalidRequest(err.Error()))
		return
	case o.any && !allow:
		s.logger.Warn("optionsOverride parameters ignored: overrides are not allowed on this endpoint",
			zap.Bool("unauthenticated", unauthenticated))
	case o.any:
		if len(o.scopes) > 0 {
			req.Scopes = o.scopes
		}
		req.AppOnly = req.AppOnly || o.appToken
		req.Tenant = o.tenant
	}
	scopeKey := tokencache.NormalizeScopes(req.Scopes)
	switch {
	case req.AppOnly:
		req.Key, req.Assertion = s.appKey(req.Tenant, scopeKey), ""
	case req.Tenant != "":
		// On-Behalf-Of in another tenant (a guest's resource tenant) is another token of the same user.
		req.Key.Scopes, req.Key.Context = scopeKey, req.Key.Context+"\x00tenant:"+strings.ToLower(req.Tenant)
	default:
		req.Key.Scopes = scopeKey
	}
	tok, err := s.cfg.Tokens.Token(r.Context(), req)
	if err != nil {
		s.fail(w, r, err, req.Scopes)
		return
	}
	writeOK(w, AuthorizationHeaderResult{AuthorizationHeader: tok.AuthorizationHeader()})
}

// writeOK sends v as JSON with the Entra sidecar's no-caching headers for 2xx answers (CacheControl.cs).
func writeOK(w http.ResponseWriter, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-cache, no-store, must-revalidate")
	h.Set("Expires", "0")
	h.Set("Pragma", "no-cache")
	body, _ := json.Marshal(v)
	_, _ = w.Write(body)
}

// overrides are the optionsOverride.* query parameters that apply to an authorization header
// (Models/BindableDownstreamApiOptions.cs binds them, DownstreamApiOptionsMerger.cs applies them).
type overrides struct {
	any      bool // some override other than BaseUrl was sent (BindableDownstreamApiOptions.HasAny)
	scopes   []string
	appToken bool
	tenant   string
}

// Bounds on what a caller may send.
const (
	maxOverrideScopes = 20
	maxScopeLen       = 512
)

// parseOverrides reads the overrides; names match case-insensitively, as in BindAsync. Settings that only shape
// a downstream call (RelativePath, HttpMethod, headers, BaseUrl) do not change a header and are ignored; those
// that would change the token and are not supported here are an error, rather than a token other than asked for.
func parseOverrides(q url.Values) (overrides, error) {
	var o overrides
	for key, values := range q {
		if isAgentParam(key) {
			o.any = true
			return o, fmt.Errorf("%s: agent identities are not supported", clip(key))
		}
		path, ok := cutPrefixFold(key, "optionsOverride.")
		if !ok {
			continue
		}
		last := values[len(values)-1]
		switch p := strings.ToLower(path); {
		case p == "baseurl":
			continue // always ignored, as in BindAsync
		case p == "scopes":
			o.any = true
			for _, v := range values {
				if strings.TrimSpace(v) == "" {
					continue
				}
				if err := checkOverrideScope(v); err != nil {
					return o, err
				}
				o.scopes = append(o.scopes, v)
			}
			if len(o.scopes) > maxOverrideScopes {
				return o, fmt.Errorf("optionsOverride.Scopes: at most %d scopes", maxOverrideScopes)
			}
		case p == "requestapptoken":
			o.any = true
			// bool.TryParse takes true or false in any case; only true changes the setting (MergeOptions).
			o.appToken = strings.EqualFold(strings.TrimSpace(last), "true")
		case p == "acquiretokenoptions.tenant":
			o.any = true
			if last == "" {
				continue
			}
			if err := checkTenantOverride(last); err != nil {
				return o, fmt.Errorf("optionsOverride.AcquireTokenOptions.Tenant: %w", err)
			}
			o.tenant = last
		case p == "acquiretokenoptions.correlationid", p == "relativepath", p == "httpmethod", p == "contenttype",
			p == "acceptheader", strings.HasPrefix(p, "extraheaderparameters."), strings.HasPrefix(p, "extraqueryparameters."):
			o.any = true
		default:
			o.any = true
			return o, fmt.Errorf("optionsOverride.%s is not supported by this sidecar", clip(path))
		}
	}
	return o, nil
}

// checkTenantOverride accepts one directory: a token is got in one tenant, never in common or organizations.
func checkTenantOverride(t string) error {
	switch strings.ToLower(t) {
	case "common", "organizations", "consumers":
		return fmt.Errorf("%q is not one directory; name the tenant", t)
	}
	return entra.CheckTenant(t)
}

func isAgentParam(key string) bool {
	return strings.EqualFold(key, "AgentIdentity") || strings.EqualFold(key, "AgentUsername") ||
		strings.EqualFold(key, "AgentUserId")
}

func checkOverrideScope(v string) error {
	if len(v) > maxScopeLen || strings.ContainsFunc(v, func(r rune) bool { return r <= ' ' || r == 0x7f || r == '"' || r == '\\' }) {
		return fmt.Errorf("optionsOverride.Scopes: %q is not a scope", clip(v))
	}
	return nil
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
		return s[len(prefix):], true
	}
	return s, false
}

// clip bounds caller-supplied text echoed in an answer.
func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}
