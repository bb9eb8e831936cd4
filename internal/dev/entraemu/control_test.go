package entraemu_test

import (
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
