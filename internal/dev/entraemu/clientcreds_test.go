package entraemu_test

import (
	"net/url"
	"slices"
	"testing"

	. "github.com/tokeninjector/caddy-token-injector/internal/dev/entraemu"
)

func ccForm(scope string) url.Values {
	return url.Values{"grant_type": {"client_credentials"}, "client_id": {DefaultAddinClientID},
		"client_secret": {DefaultAddinSecret}, "scope": {scope}}
}

func TestClientCredentials(t *testing.T) {
	e, _ := newTestEmulator(t, func(c *Config) {
		c.Apps = append(c.Apps, App{ClientID: "55555555-6666-4777-8888-999999999999", Name: "spa", RedirectURIs: []string{"http://localhost/spa"}})
	})
	cases := []struct {
		name     string
		scope    string
		aud, ver string
		roles    []string
	}{
		{"graph v1", GraphURI + "/.default", GraphURI, "1.0", []string{"User.Read.All"}},
		{"graph by app id", GraphAppID + "/.default", GraphAppID, "1.0", []string{"User.Read.All"}},
		{"downstream v2", DefaultDownstreamURI + "/.default", DefaultDownstreamAppID, "2.0", []string{"Data.Read.All"}},
		{"own API without roles", DefaultAddinIdentifierURI + "/.default", DefaultAddinIdentifierURI, "1.0", nil},
		// MSAL Go appends openid offline_access profile to client-credentials requests; Entra ignores them.
		{"with MSAL's OpenID scopes", GraphURI + "/.default openid offline_access profile", GraphURI, "1.0", []string{"User.Read.All"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := postForm(e, v2Token, ccForm(tc.scope))
			if res.status != 200 {
				t.Fatalf("%d %s", res.status, res.raw)
			}
			if _, ok := res.body["scope"]; ok {
				t.Errorf("client credentials response carries scope: %s", res.raw)
			}
			if _, ok := res.body["refresh_token"]; ok {
				t.Error("client credentials response carries a refresh token")
			}
			_, c := decodeJWT(t, str(res.body["access_token"]))
			if c["aud"] != tc.aud || c["ver"] != tc.ver || c["idtyp"] != "app" || c["tid"] != DefaultTenantID {
				t.Errorf("claims = %v", c)
			}
			if _, ok := c["scp"]; ok {
				t.Error("app token has scp")
			}
			var roles []string
			for _, r := range asSlice(c["roles"]) {
				roles = append(roles, str(r))
			}
			if !slices.Equal(roles, tc.roles) {
				t.Errorf("roles = %v, want %v", roles, tc.roles)
			}
			if !guidRE.MatchString(str(c["oid"])) || c["sub"] != c["oid"] {
				t.Errorf("oid/sub = %v/%v", c["oid"], c["sub"])
			}
		})
	}
	errCases := []struct {
		name   string
		form   url.Values
		path   string
		status int
		err    string
		code   int
	}{
		{"specific scope", ccForm(GraphURI + "/User.Read.All"), v2Token, 400, "invalid_scope", 1002012},
		{"bare scope", ccForm("User.Read"), v2Token, 400, "invalid_scope", 1002012},
		{"OpenID scopes only", ccForm("openid profile offline_access"), v2Token, 400, "invalid_scope", 1002012},
		{"unknown resource", ccForm("api://nowhere/.default"), v2Token, 400, "invalid_resource", 500011},
		{"over common", ccForm(GraphURI + "/.default"), "/common/oauth2/v2.0/token", 400, "invalid_request", 9001023},
		{"public client", url.Values{"grant_type": {"client_credentials"}, "client_id": {"55555555-6666-4777-8888-999999999999"}, "scope": {GraphURI + "/.default"}}, v2Token, 401, "invalid_client", 7000218},
		{"public client sending a secret", url.Values{"grant_type": {"client_credentials"}, "client_id": {"55555555-6666-4777-8888-999999999999"}, "client_secret": {"x"}, "scope": {GraphURI + "/.default"}}, v2Token, 401, "invalid_client", 700025},
	}
	for _, tc := range errCases {
		t.Run(tc.name, func(t *testing.T) {
			checkError(t, postForm(e, tc.path, tc.form), tc.status, tc.err, tc.code, "")
		})
	}
	t.Run("v1 resource", func(t *testing.T) {
		f := ccForm("")
		f.Del("scope")
		f.Set("resource", GraphURI)
		res := postForm(e, v1Token, f)
		if res.status != 200 || res.body["resource"] != GraphURI || res.body["expires_in"] != "3600" {
			t.Fatalf("%d %s", res.status, res.raw)
		}
	})
	if n := e.Counters().ByGrant[GrantClientCredentials]; n != len(cases)+len(errCases)+1 {
		t.Errorf("client_credentials counter = %d", n)
	}
}

func asSlice(v any) []any { s, _ := v.([]any); return s }
