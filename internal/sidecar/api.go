package sidecar

import (
	"fmt"
	"net/url"
	"strings"
)

// API is a named downstream API, the Entra sidecar's DownstreamApis:<name> section (appsettings.json): its
// scopes, its base URL for the proxying endpoints, and whether it takes the app's own token.
type API struct {
	// Name is the {apiName} of the endpoints' paths.
	Name string
	// Scopes are what the API needs, each with its resource (https://graph.microsoft.com/User.Read).
	Scopes []string
	// BaseURL is where the transparent proxy sends /{Name}/...; empty: the API is not proxied.
	BaseURL string
	// RequestAppToken makes /AuthorizationHeader/{Name} and the proxy use the app's own token (client
	// credentials) rather than the caller's On-Behalf-Of token, as DownstreamApiOptions.RequestAppToken does.
	RequestAppToken bool

	scopeKey string
	base     *url.URL
}

// maxNameLen bounds an API name, which is also a path segment.
const maxNameLen = 64

func (a *API) check() error {
	if a.Name == "" || len(a.Name) > maxNameLen || strings.ContainsAny(a.Name, "/?#%\\ \t") {
		return fmt.Errorf("api %q: a name is 1 to %d characters and no /, ?, #, %%, \\ or space", a.Name, maxNameLen)
	}
	for _, reserved := range []string{"AuthorizationHeader", "AuthorizationHeaderUnauthenticated", "Validate",
		"healthz", "readyz", "DownstreamApi", "DownstreamApiUnauthenticated"} {
		if strings.EqualFold(a.Name, reserved) {
			return fmt.Errorf("api %q: the name of an endpoint; choose another", a.Name)
		}
	}
	if len(a.Scopes) == 0 {
		return fmt.Errorf("api %q: at least one scope is required", a.Name)
	}
	if a.BaseURL != "" {
		u, err := url.Parse(a.BaseURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			return fmt.Errorf("api %q: base_url %q is not an http(s) URL without query", a.Name, a.BaseURL)
		}
		a.base = u
	}
	return nil
}

// ParseAPIs reads downstream APIs from one string, the form an environment variable can carry:
//
//	<name> [base_url=<url>] [app_token] <scope>... ; <name> ...
//
// for example "graph base_url=https://graph.microsoft.com/v1.0 https://graph.microsoft.com/User.Read".
func ParseAPIs(s string) ([]API, error) {
	var apis []API
	for _, entry := range strings.Split(s, ";") {
		fields := strings.Fields(entry)
		if len(fields) == 0 {
			continue
		}
		a := API{Name: fields[0]}
		for _, f := range fields[1:] {
			switch {
			case strings.HasPrefix(f, "base_url="):
				a.BaseURL = strings.TrimPrefix(f, "base_url=")
			case f == "app_token":
				a.RequestAppToken = true
			default:
				a.Scopes = append(a.Scopes, f)
			}
		}
		if err := a.check(); err != nil {
			return nil, err
		}
		apis = append(apis, a)
	}
	return apis, nil
}
