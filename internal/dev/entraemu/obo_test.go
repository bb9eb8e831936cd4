package entraemu_test

import (
	"encoding/base64"
	"encoding/json"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	. "github.com/tokeninjector/caddy-token-injector/internal/dev/entraemu"
)

func TestOBOSuccessGraphV1(t *testing.T) {
	e, clk := newTestEmulator(t)
	sso := mustMint(t, e, "adele", MintOptions{})
	res := postForm(e, v2Token, oboForm(sso, "https://graph.microsoft.com/User.Read https://graph.microsoft.com/Mail.Read openid profile offline_access"),
		"client-request-id", "7b7a4b0e-1111-4222-8333-944455556666")
	if res.status != 200 {
		t.Fatalf("status %d: %s", res.status, res.raw)
	}
	b := res.body
	if b["token_type"] != "Bearer" {
		t.Errorf("token_type = %v", b["token_type"])
	}
	if got, want := b["scope"], "https://graph.microsoft.com/User.Read https://graph.microsoft.com/Mail.Read openid profile"; got != want {
		t.Errorf("scope = %q, want %q", got, want)
	}
	if b["expires_in"] != float64(3600) || b["ext_expires_in"] != float64(3600) {
		t.Errorf("expires_in/ext_expires_in = %v/%v", b["expires_in"], b["ext_expires_in"])
	}
	if _, ok := b["refresh_in"]; ok {
		t.Error("refresh_in present although not configured")
	}
	for _, k := range []string{"access_token", "refresh_token", "id_token", "client_info"} {
		if str(b[k]) == "" {
			t.Errorf("%s missing", k)
		}
	}
	if res.header.Get("client-request-id") != "7b7a4b0e-1111-4222-8333-944455556666" {
		t.Errorf("client-request-id not echoed: %q", res.header.Get("client-request-id"))
	}
	ci, err := base64.RawURLEncoding.DecodeString(str(b["client_info"]))
	if err != nil {
		t.Fatalf("client_info is not unpadded base64url: %v", err)
	}
	var info map[string]string
	_ = json.Unmarshal(ci, &info)
	adele := e.UserByKey("adele")
	if info["uid"] != adele.ObjectID || info["utid"] != DefaultTenantID {
		t.Errorf("client_info = %v", info)
	}

	h, c := decodeJWT(t, str(b["access_token"]))
	if h["alg"] != "RS256" || h["typ"] != "JWT" || h["kid"] != e.SigningKeyID() || h["x5t"] != e.SigningKeyID() {
		t.Errorf("v1 header = %v", h)
	}
	want := map[string]any{
		"aud": GraphURI, "iss": "https://sts.windows.net/" + DefaultTenantID + "/", "ver": "1.0",
		"appid": DefaultAddinClientID, "appidacr": "1", "acr": "1", "oid": adele.ObjectID,
		"tid": DefaultTenantID, "upn": adele.UPN, "unique_name": adele.UPN, "name": "Adele Vance",
		"given_name": "Adele", "family_name": "Vance", "scp": "User.Read Mail.Read openid profile",
		"iat": float64(clk.Now().Unix()), "exp": float64(clk.Now().Add(time.Hour).Unix()),
	}
	for k, v := range want {
		if c[k] != v {
			t.Errorf("claim %s = %v, want %v", k, c[k], v)
		}
	}
	for _, k := range []string{"aio", "amr", "ipaddr", "rh", "sub", "uti", "nbf", "sid"} {
		if _, ok := c[k]; !ok {
			t.Errorf("v1 claim %s missing", k)
		}
	}

	_, id := decodeJWT(t, str(b["id_token"]))
	if id["aud"] != DefaultAddinClientID || id["iss"] != "https://login.test/"+DefaultTenantID+"/v2.0" ||
		id["oid"] != adele.ObjectID || id["preferred_username"] != adele.UPN || id["ver"] != "2.0" {
		t.Errorf("id_token claims = %v", id)
	}
}

func TestOBOSuccessDownstreamV2(t *testing.T) {
	e, _ := newTestEmulator(t)
	sso := mustMint(t, e, "megan", MintOptions{Version: 2})
	res := postForm(e, v2Token, oboForm(sso, DefaultDownstreamURI+"/.default"))
	if res.status != 200 {
		t.Fatalf("status %d: %s", res.status, res.raw)
	}
	if res.body["scope"] != DefaultDownstreamURI+"/Data.Read" {
		t.Errorf("scope = %v", res.body["scope"])
	}
	for _, k := range []string{"refresh_token", "id_token"} {
		if _, ok := res.body[k]; ok {
			t.Errorf("%s returned without offline_access/openid", k)
		}
	}
	h, c := decodeJWT(t, str(res.body["access_token"]))
	if _, ok := h["x5t"]; ok {
		t.Errorf("v2 header carries x5t: %v", h)
	}
	megan := e.UserByKey("megan")
	want := map[string]any{
		"aud": DefaultDownstreamAppID, "iss": "https://login.test/" + DefaultTenantID + "/v2.0", "ver": "2.0",
		"azp": DefaultAddinClientID, "azpacr": "1", "scp": "Data.Read", "oid": megan.ObjectID,
		"preferred_username": megan.UPN, "name": megan.Name, "tid": DefaultTenantID,
	}
	for k, v := range want {
		if c[k] != v {
			t.Errorf("claim %s = %v, want %v", k, c[k], v)
		}
	}
	for _, k := range []string{"aio", "rh", "sid", "sub", "uti", "iat", "nbf", "exp"} {
		if _, ok := c[k]; !ok {
			t.Errorf("v2 claim %s missing", k)
		}
	}
	for _, k := range []string{"upn", "appid", "amr"} {
		if _, ok := c[k]; ok {
			t.Errorf("v1-only claim %s in a v2 token", k)
		}
	}
}

func TestOBOClientSecretBasicAndV1Endpoint(t *testing.T) {
	e, _ := newTestEmulator(t)
	sso := mustMint(t, e, "alex", MintOptions{})
	f := oboForm(sso, "https://graph.microsoft.com/User.Read")
	f.Del("client_secret")
	f.Del("client_id")
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(DefaultAddinClientID)+":"+url.QueryEscape(DefaultAddinSecret)))
	if res := postForm(e, v2Token, f, "Authorization", basic); res.status != 200 {
		t.Fatalf("client_secret_basic: %d %s", res.status, res.raw)
	}

	v1 := url.Values{
		"grant_type": {"urn:ietf:params:oauth:grant-type:jwt-bearer"}, "client_id": {DefaultAddinClientID},
		"client_secret": {DefaultAddinSecret}, "assertion": {sso}, "resource": {GraphURI},
		"requested_token_use": {"on_behalf_of"},
	}
	res := postForm(e, v1Token, v1)
	if res.status != 200 {
		t.Fatalf("v1 OBO: %d %s", res.status, res.raw)
	}
	for k, want := range map[string]string{"resource": GraphURI, "scope": "User.Read Mail.Read", "expires_in": "3600", "token_type": "Bearer"} {
		if res.body[k] != want {
			t.Errorf("v1 %s = %v, want %q", k, res.body[k], want)
		}
	}
	if str(res.body["refresh_token"]) == "" || str(res.body["expires_on"]) == "" {
		t.Errorf("v1 body = %s", res.raw)
	}
}

func TestOBOErrors(t *testing.T) {
	e, clk := newTestEmulator(t, func(c *Config) {
		c.Apps = append(c.Apps, App{ClientID: "11111111-2222-4333-8444-555555555555", Secret: "s3", Name: "other-api",
			IdentifierURIs: []string{"api://other"}, ExposedScopes: []string{"access_as_user"}})
	})
	other, _ := newTestEmulator(t, func(c *Config) { c.SigningKey = nil })
	good := mustMint(t, e, "adele", MintOptions{})
	forged := mustMint(t, other, "adele", MintOptions{})
	expired := mustMint(t, e, "adele", MintOptions{Lifetime: -time.Minute})
	future := mustMint(t, e, "adele", MintOptions{NotBefore: clk.Now().Add(time.Hour)})
	wrongAud := mustMint(t, e, "adele", MintOptions{Audience: "api://other"})
	appOnly := mustMint(t, e, "adele", MintOptions{ExtraClaims: map[string]any{"scp": "", "roles": []string{"x"}}})
	guidAud := mustMint(t, e, "adele", MintOptions{Audience: DefaultAddinClientID, Version: 2})

	withSecret := func(f url.Values, s string) url.Values { f.Set("client_secret", s); return f }
	withClient := func(f url.Values, id string) url.Values { f.Set("client_id", id); return f }
	without := func(f url.Values, k string) url.Values { f.Del(k); return f }
	cases := []struct {
		name     string
		form     url.Values
		status   int
		err      string
		code     int
		suberror string
	}{
		{"expired assertion", oboForm(expired, "User.Read"), 400, "invalid_grant", 500133, ""},
		{"not yet valid", oboForm(future, "User.Read"), 400, "invalid_grant", 500133, ""},
		{"foreign signature", oboForm(forged, "User.Read"), 400, "invalid_grant", 50013, ""},
		{"tampered signature", oboForm(good[:len(good)-4]+"AAAA", "User.Read"), 400, "invalid_grant", 50013, ""},
		{"malformed assertion", oboForm("not-a-jwt", "User.Read"), 400, "invalid_request", 50027, ""},
		{"wrong audience", oboForm(wrongAud, "User.Read"), 400, "invalid_grant", 500131, ""},
		{"app-only assertion", oboForm(appOnly, "User.Read"), 400, "invalid_grant", 7000114, ""},
		{"unknown resource", oboForm(good, "api://nowhere/read"), 400, "invalid_resource", 500011, ""},
		{"unknown scope", oboForm(good, "https://graph.microsoft.com/Nope.Read"), 400, "invalid_scope", 70011, ""},
		{"two resources", oboForm(good, "https://graph.microsoft.com/User.Read api://downstream/Data.Read"), 400, "invalid_scope", 28000, ""},
		{"not consented", oboForm(good, "https://graph.microsoft.com/Calendars.Read"), 400, "invalid_grant", 65001, "consent_required"},
		{"admin-only not consented", oboForm(good, "https://graph.microsoft.com/Directory.Read.All"), 400, "invalid_grant", 65001, "consent_required"},
		{"bad secret", withSecret(oboForm(good, "User.Read"), "wrong"), 401, "invalid_client", 7000215, ""},
		{"no secret", without(oboForm(good, "User.Read"), "client_secret"), 401, "invalid_client", 7000218, ""},
		{"unknown client", withClient(oboForm(good, "User.Read"), "99999999-9999-4999-8999-999999999999"), 400, "unauthorized_client", 700016, ""},
		{"missing assertion", without(oboForm(good, "User.Read"), "assertion"), 400, "invalid_request", 900144, ""},
		{"missing scope", without(oboForm(good, "User.Read"), "scope"), 400, "invalid_request", 900144, ""},
		{"unsupported grant", url.Values{"grant_type": {"password"}, "client_id": {DefaultAddinClientID}}, 400, "unsupported_grant_type", 70003, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			checkError(t, postForm(e, v2Token, tc.form), tc.status, tc.err, tc.code, tc.suberror)
		})
	}
	t.Run("guid audience accepted", func(t *testing.T) {
		if res := postForm(e, v2Token, oboForm(guidAud, "User.Read")); res.status != 200 {
			t.Fatalf("%d %s", res.status, res.raw)
		}
	})
	t.Run("unknown tenant", func(t *testing.T) {
		checkError(t, postForm(e, "/contoso.example/oauth2/v2.0/token", oboForm(good, "User.Read")), 400, "invalid_request", 90002, "")
	})
	t.Run("correlation id echoed", func(t *testing.T) {
		res := postForm(e, v2Token, oboForm(expired, "User.Read"), "client-request-id", "corr-123")
		if res.body["correlation_id"] != "corr-123" || !strings.Contains(str(res.body["error_description"]), "Correlation ID: corr-123 ") {
			t.Errorf("correlation id not echoed: %s", res.raw)
		}
	})
	t.Run("expired message names both times", func(t *testing.T) {
		d := str(postForm(e, v2Token, oboForm(expired, "User.Read")).body["error_description"])
		if !strings.Contains(d, "Current time: ") || !strings.Contains(d, "expiry time of assertion ") {
			t.Errorf("description = %q", d)
		}
	})
}

func TestOBOConsentModel(t *testing.T) {
	e, _ := newTestEmulator(t, func(c *Config) { c.Apps[0].PreConsented = false })
	sso := mustMint(t, e, "lee", MintOptions{})
	checkError(t, postForm(e, v2Token, oboForm(sso, "https://graph.microsoft.com/User.Read")), 400, "invalid_grant", 65001, "consent_required")
	// Consent given on the authorize page is per user and client.
	if err := e.GrantConsent("lee", DefaultAddinClientID, "https://graph.microsoft.com/User.Read"); err != nil {
		t.Fatal(err)
	}
	if res := postForm(e, v2Token, oboForm(sso, "https://graph.microsoft.com/User.Read")); res.status != 200 {
		t.Fatalf("after consent: %d %s", res.status, res.raw)
	}
	other := mustMint(t, e, "lidia", MintOptions{})
	checkError(t, postForm(e, v2Token, oboForm(other, "https://graph.microsoft.com/User.Read")), 400, "invalid_grant", 65001, "consent_required")
}

func TestMintAccessTokenShapes(t *testing.T) {
	e, _ := newTestEmulator(t)
	cases := []struct {
		name string
		o    MintOptions
		aud  string
		ver  string
		scp  string
	}{
		{"default is a v1 SSO token for the add-in API", MintOptions{}, DefaultAddinIdentifierURI, "1.0", "access_as_user"},
		{"v2 uses the client id", MintOptions{Version: 2}, DefaultAddinClientID, "2.0", "access_as_user"},
		{"downstream defaults to its version", MintOptions{Audience: DefaultDownstreamURI, Scopes: []string{"Data.Read"}}, DefaultDownstreamAppID, "2.0", "Data.Read"},
		{"v1 by app id keeps the id", MintOptions{Audience: DefaultAddinClientID, Version: 1}, DefaultAddinClientID, "1.0", "access_as_user"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, c := decodeJWT(t, mustMint(t, e, "joni", tc.o))
			if c["aud"] != tc.aud || c["ver"] != tc.ver || c["scp"] != tc.scp {
				t.Errorf("aud/ver/scp = %v/%v/%v", c["aud"], c["ver"], c["scp"])
			}
		})
	}
	_, c := decodeJWT(t, mustMint(t, e, "joni", MintOptions{MFA: true}))
	if amr, _ := c["amr"].([]any); !slices.Contains(amr, any("mfa")) {
		t.Errorf("amr = %v, want mfa", c["amr"])
	}
	if _, err := e.MintAccessToken("nobody", MintOptions{}); err == nil {
		t.Error("unknown user minted")
	}
	if _, err := e.MintAccessToken("joni", MintOptions{Audience: "api://nowhere"}); err == nil {
		t.Error("unknown audience minted")
	}
}

func TestOBOMoreCases(t *testing.T) {
	e, _ := newTestEmulator(t, func(c *Config) {
		c.RefreshIn = 30 * time.Minute
		c.Apps[0].RequiredPermissions = map[string][]string{GraphURI: {"User.Read"}}
		c.Apps = append(c.Apps, App{ClientID: "66666666-7777-4888-8999-aaaaaaaaaaaa", Name: "public",
			IdentifierURIs: []string{"api://public"}, ExposedScopes: []string{"access_as_user"}})
	})
	sso := mustMint(t, e, "isaiah", MintOptions{})
	res := postForm(e, v2Token, oboForm(sso, "https://graph.microsoft.com/.default"))
	if res.status != 200 || res.body["refresh_in"] != float64(1800) || res.body["scope"] != GraphURI+"/User.Read" {
		t.Errorf(".default with refresh_in: %d %s", res.status, res.raw)
	}
	// .default on a resource the app has no static permissions for is a consent problem.
	checkError(t, postForm(e, v2Token, oboForm(sso, DefaultDownstreamURI+"/.default")), 400, "invalid_grant", 65001, "consent_required")
	// .default mixed with a specific scope is rejected.
	checkError(t, postForm(e, v2Token, oboForm(sso, GraphURI+"/.default "+GraphURI+"/User.Read")), 400, "invalid_scope", 70011, "")
	// OBO is a confidential-client flow.
	f := oboForm(mustMint(t, e, "isaiah", MintOptions{Audience: "api://public"}), "User.Read")
	f.Set("client_id", "66666666-7777-4888-8999-aaaaaaaaaaaa")
	f.Del("client_secret")
	checkError(t, postForm(e, v2Token, f), 401, "invalid_client", 7000218, "")
	// An unknown signing key is reported with the thumbprint the token named.
	other, _ := newTestEmulator(t, func(c *Config) { c.SigningKey = nil })
	d := str(postForm(e, v2Token, oboForm(mustMint(t, other, "isaiah", MintOptions{}), "User.Read")).body["error_description"])
	if !strings.Contains(d, "The key was not found., Thumbprint of key used by client: '") {
		t.Errorf("description = %q", d)
	}
}
