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

func controlReq(e *Emulator, method, path, body string) result {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	return serve(e, req)
}

func TestControlAPI(t *testing.T) {
	e, clk := newTestEmulator(t)

	t.Run("index lists users and apps", func(t *testing.T) {
		res := get(e, "/")
		if res.status != 200 || !strings.Contains(res.raw, "AdeleV@contoso.onmicrosoft.com") || !strings.Contains(res.raw, DefaultAddinClientID) {
			t.Errorf("%d %.200s", res.status, res.raw)
		}
	})

	tokens := []struct {
		name, query string
		status      int
		aud         string
		exp         time.Duration
	}{
		{"default SSO token", "user=adele", 200, DefaultAddinIdentifierURI, time.Hour},
		{"audience and lifetime", "user=megan&audience=" + DefaultDownstreamURI + "&scope=Data.Read&lifetime=10m", 200, DefaultDownstreamAppID, 10 * time.Minute},
		{"lifetime in seconds", "user=megan&lifetime=90", 200, DefaultAddinIdentifierURI, 90 * time.Second},
		{"unknown user", "user=mallory", 404, "", 0},
		{"bad lifetime", "user=adele&lifetime=soon", 400, "", 0},
		{"unknown audience", "user=adele&audience=api://x", 400, "", 0},
	}
	for _, tc := range tokens {
		t.Run(tc.name, func(t *testing.T) {
			res := controlReq(e, http.MethodPost, "/_emulator/token?"+tc.query, "")
			if res.status != tc.status {
				t.Fatalf("%d %s", res.status, res.raw)
			}
			if tc.status != 200 {
				if str(res.body["error"]) == "" {
					t.Errorf("no error message: %s", res.raw)
				}
				return
			}
			_, c := decodeJWT(t, str(res.body["access_token"]))
			if c["aud"] != tc.aud || c["exp"] != float64(clk.Now().Add(tc.exp).Unix()) {
				t.Errorf("aud/exp = %v/%v", c["aud"], c["exp"])
			}
		})
	}

	faults := []struct {
		name, path, body string
		status           int
	}{
		{"mfa for adele", "/_emulator/faults/adele", `{"kind":"mfa_required"}`, 204},
		{"global throttle", "/_emulator/faults/*", `{"kind":"throttled","retry_after":"5s","count":3}`, 204},
		{"slow in seconds", "/_emulator/faults/megan", `{"kind":"slow","delay":"0.25"}`, 204},
		{"unknown kind", "/_emulator/faults/adele", `{"kind":"meteor"}`, 400},
		{"unknown field", "/_emulator/faults/adele", `{"kind":"down","severity":9}`, 400},
		{"bad delay", "/_emulator/faults/adele", `{"kind":"slow","delay":"later"}`, 400},
		{"negative count", "/_emulator/faults/adele", `{"kind":"down","count":-1}`, 400},
		{"unknown user", "/_emulator/faults/mallory", `{"kind":"down"}`, 404},
	}
	for _, tc := range faults {
		t.Run(tc.name, func(t *testing.T) {
			if res := controlReq(e, http.MethodPut, tc.path, tc.body); res.status != tc.status {
				t.Errorf("%d %s", res.status, res.raw)
			}
		})
	}
	got := e.Faults()
	if got["adele"].Kind != FaultMFARequired || got[""].Kind != FaultThrottled || got[""].RetryAfter != 5*time.Second ||
		got[""].Count != 3 || got["megan"].Delay != 250*time.Millisecond {
		t.Errorf("faults = %+v", got)
	}
	if res := get(e, "/_emulator/faults"); res.status != 200 || res.body["*"] == nil || res.body["adele"] == nil {
		t.Errorf("list: %s", res.raw)
	}
	if res := controlReq(e, http.MethodDelete, "/_emulator/faults/megan", ""); res.status != 204 || len(e.Faults()) != 2 {
		t.Errorf("delete one: %d, %d left", res.status, len(e.Faults()))
	}
	if res := controlReq(e, http.MethodDelete, "/_emulator/faults", ""); res.status != 204 || len(e.Faults()) != 0 {
		t.Errorf("delete all: %d, %d left", res.status, len(e.Faults()))
	}

	t.Run("counters", func(t *testing.T) {
		postForm(e, v2Token, oboForm(mustMint(t, e, "adele", MintOptions{}), "User.Read"))
		res := get(e, "/_emulator/counters")
		byGrant, _ := res.body["by_grant"].(map[string]any)
		byUser, _ := res.body["by_user_grant"].(map[string]any)
		if res.status != 200 || byGrant["obo"] != float64(1) || res.body["token_requests"] != float64(1) ||
			byUser["adele"].(map[string]any)["obo"] != float64(1) {
			t.Errorf("counters: %s", res.raw)
		}
		if res := controlReq(e, http.MethodPost, "/_emulator/counters/reset", ""); res.status != 204 {
			t.Errorf("reset: %d", res.status)
		}
		if c := e.Counters(); c.TokenRequests != 0 || len(c.ByGrant) != 0 {
			t.Errorf("after reset: %+v", c)
		}
	})

	t.Run("revoke", func(t *testing.T) {
		rt := refreshTokenFor(t, e, "lee")
		if res := controlReq(e, http.MethodPost, "/_emulator/revoke/lee", ""); res.status != 204 {
			t.Fatalf("%d", res.status)
		}
		checkError(t, postForm(e, v2Token, refreshForm(rt, "User.Read")), 400, "invalid_grant", 50173, "")
	})
}

func TestCountersSnapshotIsACopy(t *testing.T) {
	e, _ := newTestEmulator(t)
	postForm(e, v2Token, oboForm(mustMint(t, e, "adele", MintOptions{}), "User.Read"))
	c := e.Counters()
	c.ByGrant["obo"] = 99
	c.ByUserGrant["adele"]["obo"] = 99
	if n := e.Counters().ByGrant["obo"]; n != 1 {
		t.Errorf("snapshot aliases internal state: %d", n)
	}
	if n := e.Counters().ByUserGrant["adele"]["obo"]; n != 1 {
		t.Errorf("snapshot aliases internal state: %d", n)
	}
}

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
