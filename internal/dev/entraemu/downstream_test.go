package entraemu_test

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	. "github.com/tokeninjector/caddy-token-injector/internal/dev/entraemu"
)

func callDownstream(h http.Handler, auth string) result {
	req := httptest.NewRequest(http.MethodGet, "/api/whoami", nil)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	return serve(h, req)
}

func TestDownstreamAPI(t *testing.T) {
	e, clk := newTestEmulator(t)
	other, _ := newTestEmulator(t, func(c *Config) { c.SigningKey = nil })
	api := NewDownstreamAPI(e)
	res := postForm(e, v2Token, oboForm(mustMint(t, e, "adele", MintOptions{}), DefaultDownstreamURI+"/Data.Read"))
	tok := str(res.body["access_token"])

	got := callDownstream(api, "Bearer "+tok)
	sum := sha256.Sum256([]byte(tok))
	adele := e.UserByKey("adele")
	if got.status != 200 || got.body["aud"] != DefaultDownstreamAppID || got.body["oid"] != adele.ObjectID ||
		got.body["upn"] != adele.UPN || got.body["scp"] != "Data.Read" || got.body["token_sha256"] != hex.EncodeToString(sum[:]) ||
		got.body["tid"] != DefaultTenantID || got.body["name"] != adele.Name {
		t.Fatalf("%d %s", got.status, got.raw)
	}
	for _, k := range []string{"aud", "oid", "tid", "upn", "name", "scp", "roles", "token_sha256"} {
		if _, ok := got.body[k]; !ok {
			t.Errorf("field %s missing", k)
		}
	}

	appTok := str(postForm(e, v2Token, ccForm(DefaultDownstreamURI+"/.default")).body["access_token"])
	if got := callDownstream(api, "Bearer "+appTok); got.status != 200 || got.body["roles"] == nil {
		t.Errorf("app token: %d %s", got.status, got.raw)
	}

	unauthorized := []struct{ name, auth string }{
		{"no header", ""},
		{"basic", "Basic Zm9vOmJhcg=="},
		{"garbage", "Bearer nope"},
		{"other issuer's key", "Bearer " + mustMint(t, other, "adele", MintOptions{})},
		{"expired", "Bearer " + mustMint(t, e, "adele", MintOptions{Lifetime: -time.Second})},
	}
	for _, tc := range unauthorized {
		t.Run(tc.name, func(t *testing.T) {
			got := callDownstream(api, tc.auth)
			if got.status != 401 || !strings.HasPrefix(got.header.Get("WWW-Authenticate"), "Bearer ") {
				t.Errorf("%d %q", got.status, got.header.Get("WWW-Authenticate"))
			}
		})
	}
	clk.Advance(2 * time.Hour)
	if got := callDownstream(api, "Bearer "+tok); got.status != 401 {
		t.Errorf("token past exp accepted: %d", got.status)
	}
}

func TestDownstreamCAEChallenge(t *testing.T) {
	e, _ := newTestEmulator(t)
	api := NewDownstreamAPI(e)
	sso := mustMint(t, e, "adele", MintOptions{})
	tok := str(postForm(e, v2Token, oboForm(sso, DefaultDownstreamURI+"/Data.Read")).body["access_token"])
	e.SetFault("adele", Fault{Kind: FaultInsufficientClaims})
	got := callDownstream(api, "Bearer "+tok)
	wa := got.header.Get("WWW-Authenticate")
	if got.status != 401 || !strings.Contains(wa, `error="insufficient_claims"`) {
		t.Fatalf("%d %q", got.status, wa)
	}
	i := strings.Index(wa, `claims="`) + len(`claims="`)
	raw, err := base64.StdEncoding.DecodeString(wa[i : i+strings.Index(wa[i:], `"`)])
	var claims map[string]map[string]map[string]any
	if err != nil || json.Unmarshal(raw, &claims) != nil || claims["access_token"]["nbf"]["essential"] != true {
		t.Fatalf("claims %q: %v", raw, err)
	}
	// The token endpoint is not affected by the CAE fault; answering the challenge clears it.
	form := oboForm(sso, DefaultDownstreamURI+"/Data.Read")
	form.Set("claims", string(raw))
	res := postForm(e, v2Token, form)
	if res.status != 200 {
		t.Fatalf("OBO with claims: %d %s", res.status, res.raw)
	}
	if got := callDownstream(api, "Bearer "+str(res.body["access_token"])); got.status != 200 {
		t.Errorf("after answering the challenge: %d %s", got.status, got.raw)
	}
	// Client capabilities ride along in xms_cc.
	form.Set("claims", `{"access_token":{"xms_cc":{"values":["cp1"]}}}`)
	_, c := decodeJWT(t, str(postForm(e, v2Token, form).body["access_token"]))
	if cc := asSlice(c["xms_cc"]); len(cc) != 1 || cc[0] != "cp1" {
		t.Errorf("xms_cc = %v", c["xms_cc"])
	}
}
