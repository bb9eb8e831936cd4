package entraemu_test

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	. "github.com/tokeninjector/caddy-token-injector/internal/dev/entraemu"
)

func TestSecondTenantHasItsOwnIssuerUsersAndTokenEndpoint(t *testing.T) {
	e, _ := newTestEmulator(t)
	fab, err := e.AddTenant(SecondTenantConfig())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.AddTenant(SecondTenantConfig()); err == nil {
		t.Fatal("the same tenant was added twice")
	}
	for _, seg := range []string{SecondTenantID, SecondTenantDomain} {
		res := get(e, "/"+seg+"/v2.0/.well-known/openid-configuration")
		if res.status != 200 || res.body["issuer"] != "https://login.test/"+SecondTenantID+"/v2.0" {
			t.Fatalf("%s discovery: %d %v", seg, res.status, res.body["issuer"])
		}
	}
	if res := get(e, "/"+SecondTenantID+"/.well-known/openid-configuration"); res.body["issuer"] != "https://sts.windows.net/"+SecondTenantID+"/" {
		t.Fatalf("v1 issuer %v", res.body["issuer"])
	}
	// /organizations stays Entra's templated document, and its keys verify every tenant's tokens.
	if res := get(e, "/organizations/v2.0/.well-known/openid-configuration"); res.body["issuer"] != "https://login.test/{tenantid}/v2.0" {
		t.Fatalf("organizations issuer %v", res.body["issuer"])
	}
	sso := mustMint(t, fab, "ava", MintOptions{})
	_, c := decodeJWT(t, sso)
	if c["tid"] != SecondTenantID || c["iss"] != "https://sts.windows.net/"+SecondTenantID+"/" {
		t.Fatalf("second tenant's token: %v", c)
	}
	if _, err := e.MintAccessToken("ava", MintOptions{}); err == nil {
		t.Fatal("the first tenant knows the second tenant's user")
	}
	// OBO in the caller's own tenant works; in the other tenant it is refused.
	res := postForm(e, "/"+SecondTenantID+"/oauth2/v2.0/token", oboForm(sso, "https://graph.microsoft.com/User.Read"))
	if res.status != 200 {
		t.Fatalf("OBO in the second tenant: %d %s", res.status, res.raw)
	}
	_, c = decodeJWT(t, str(res.body["access_token"]))
	if c["tid"] != SecondTenantID {
		t.Fatalf("OBO token of tenant %v", c["tid"])
	}
	checkError(t, postForm(e, v2Token, oboForm(sso, "https://graph.microsoft.com/User.Read")), 400, "invalid_grant", 50013, "")
	if fab.Counters().ByGrant[GrantOBO] != 1 || e.Counters().ByGrant[GrantOBO] != 1 {
		t.Fatalf("each tenant counts its own requests: %v, %v", fab.Counters().ByGrant, e.Counters().ByGrant)
	}
	// The second tenant's control API.
	req, _ := http.NewRequest(http.MethodPost, "/_emulator/tenants/"+SecondTenantID+"/token?user=ben", nil)
	if res := serve(e, req); res.status != 200 || !strings.HasPrefix(str(res.body["access_token"]), "ey") {
		t.Fatalf("control token: %d %s", res.status, res.raw)
	}
	if res := serve(e, httpReq(http.MethodGet, "/_emulator/tenants/nope/counters")); res.status != 404 {
		t.Fatalf("unknown tenant: %d", res.status)
	}
}

func httpReq(method, path string) *http.Request {
	r, _ := http.NewRequest(method, path, nil)
	return r
}

func TestClaimsParameterIsRecordedAndCP1TokensCarryXmsCC(t *testing.T) {
	e, _ := newTestEmulator(t)
	form := oboForm(mustMint(t, e, "adele", MintOptions{}), "https://graph.microsoft.com/User.Read")
	form.Set("claims", `{"access_token":{"xms_cc":{"values":["cp1"]}}}`)
	res := postForm(e, v2Token, form)
	if res.status != 200 {
		t.Fatal(res.raw)
	}
	_, c := decodeJWT(t, str(res.body["access_token"]))
	if cc, _ := c["xms_cc"].([]any); len(cc) != 1 || cc[0] != "cp1" {
		t.Fatalf("a cp1 client's token has no xms_cc: %v", c["xms_cc"])
	}
	reqs := e.TokenRequests()
	if len(reqs) != 1 || reqs[0].Grant != GrantOBO || len(reqs[0].Capabilities) != 1 || reqs[0].Challenge {
		t.Fatalf("recorded %+v", reqs)
	}
	if strings.Contains(res.raw, DefaultAddinSecret) || strings.Contains(reqs[0].Claims, DefaultAddinSecret) {
		t.Fatal("a secret in the log")
	}
}

func TestCAERevocationChallengesOlderCAETokensOnly(t *testing.T) {
	e, clk := newTestEmulator(t)
	api := NewDownstreamAPI(e)
	obo := func(claims string) string {
		form := oboForm(mustMint(t, e, "adele", MintOptions{}), "api://downstream/Data.Read")
		if claims != "" {
			form.Set("claims", claims)
		}
		res := postForm(e, v2Token, form)
		if res.status != 200 {
			t.Fatal(res.raw)
		}
		return str(res.body["access_token"])
	}
	callAPI := func(tok string) result { return get(api, "/v1.0/me", "Authorization", "Bearer "+tok) }
	cp1 := `{"access_token":{"xms_cc":{"values":["cp1"]}}}`
	before, plain := obo(cp1), obo("")
	clk.Advance(300 * time.Millisecond) // the same second: uti, not iat, orders these
	e.RevokeCAE("adele", false)
	res := callAPI(before)
	claims, ok := challengeClaims(res.header.Get("WWW-Authenticate"))
	if res.status != 401 || !ok || !strings.Contains(claims, `"nbf"`) {
		t.Fatalf("a CAE token from before the event: %d %q", res.status, res.header.Get("WWW-Authenticate"))
	}
	if res := callAPI(plain); res.status != 200 {
		t.Fatalf("a token without cp1 cannot be challenged: %d", res.status)
	}
	after := obo(`{"access_token":{"xms_cc":{"values":["cp1"]},` + claims[len(`{"access_token":{`):])
	if res := callAPI(after); res.status != 200 {
		t.Fatalf("a token issued after the event: %d %s", res.status, res.raw)
	}
	if reqs := e.TokenRequests(); !reqs[len(reqs)-1].Challenge {
		t.Fatal("the answer to the challenge is not recorded as one")
	}
	clk.Advance(time.Second)
	if res := callAPI(before); res.status != 401 {
		t.Fatal("the old token is accepted a second later")
	}

	// With MFA required, the answer to the challenge is AADSTS50076 with its claims.
	e.RevokeCAE("adele", true)
	form := oboForm(mustMint(t, e, "adele", MintOptions{}), "api://downstream/Data.Read")
	form.Set("claims", claims)
	checkError(t, postForm(e, v2Token, form), 400, "invalid_grant", 50076, "basic_action")
}

// challengeClaims decodes the claims of a Bearer insufficient_claims challenge.
func challengeClaims(h string) (string, bool) {
	_, after, ok := strings.Cut(h, `claims="`)
	if !ok || !strings.Contains(h, `error="insufficient_claims"`) {
		return "", false
	}
	b64, _, _ := strings.Cut(after, `"`)
	raw, err := url.QueryUnescape(b64)
	if err != nil {
		return "", false
	}
	return decodeStd(raw)
}

func decodeStd(s string) (string, bool) {
	b, err := base64.StdEncoding.DecodeString(s)
	return string(b), err == nil
}
