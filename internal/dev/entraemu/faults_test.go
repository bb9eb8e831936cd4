package entraemu_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	. "github.com/tokeninjector/caddy-token-injector/internal/dev/entraemu"
)

func TestFaultsOnTokenEndpoint(t *testing.T) {
	cases := []struct {
		name     string
		fault    Fault
		refresh  bool // exercise a refresh grant instead of OBO
		status   int
		err      string
		code     int
		suberror string
		claims   string // expected claims; "capolids" means the default challenge
	}{
		{"mfa required", Fault{Kind: FaultMFARequired}, false, 400, "invalid_grant", 50076, "basic_action", "capolids"},
		{"mfa with custom claims", Fault{Kind: FaultMFARequired, Claims: `{"access_token":{"acrs":{"essential":true,"value":"c1"}}}`}, false, 400, "invalid_grant", 50076, "basic_action", `{"access_token":{"acrs":{"essential":true,"value":"c1"}}}`},
		{"consent required", Fault{Kind: FaultConsentRequired}, false, 400, "invalid_grant", 65001, "consent_required", ""},
		{"blocked by CA", Fault{Kind: FaultBlockedByCA}, false, 400, "invalid_grant", 53003, "", ""},
		{"down", Fault{Kind: FaultDown}, false, 503, "temporarily_unavailable", 90033, "", ""},
		{"refresh expired", Fault{Kind: FaultRefreshExpired}, true, 400, "invalid_grant", 700082, "bad_token", ""},
		{"refresh revoked", Fault{Kind: FaultRefreshRevoked}, true, 400, "invalid_grant", 50173, "", ""},
		{"mfa on refresh", Fault{Kind: FaultMFARequired}, true, 400, "invalid_grant", 50076, "basic_action", "capolids"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e, _ := newTestEmulator(t)
			form := oboForm(mustMint(t, e, "adele", MintOptions{}), "https://graph.microsoft.com/User.Read")
			if tc.refresh {
				form = refreshForm(refreshTokenFor(t, e, "adele"), "https://graph.microsoft.com/User.Read")
			}
			e.SetFault("adele", tc.fault)
			res := postForm(e, v2Token, form)
			checkError(t, res, tc.status, tc.err, tc.code, tc.suberror)
			switch got := str(res.body["claims"]); tc.claims {
			case "capolids":
				var c struct {
					AccessToken struct {
						Capolids struct {
							Essential bool     `json:"essential"`
							Values    []string `json:"values"`
						} `json:"capolids"`
					} `json:"access_token"`
				}
				if err := json.Unmarshal([]byte(got), &c); err != nil || !c.AccessToken.Capolids.Essential || !guidRE.MatchString(c.AccessToken.Capolids.Values[0]) {
					t.Errorf("claims = %q", got)
				}
			default:
				if got != tc.claims {
					t.Errorf("claims = %q, want %q", got, tc.claims)
				}
			}
			if c := e.Counters(); c.Faults != 1 || c.Errors != 1 {
				t.Errorf("faults/errors = %d/%d", c.Faults, c.Errors)
			}
			e.ClearFaults()
			if res := postForm(e, v2Token, form); !tc.refresh && res.status != 200 {
				t.Errorf("after ClearFaults: %d %s", res.status, res.raw)
			}
		})
	}
}

func TestFaultScopeAndCount(t *testing.T) {
	e, _ := newTestEmulator(t)
	obo := func(user string) int {
		return postForm(e, v2Token, oboForm(mustMint(t, e, user, MintOptions{}), "User.Read")).status
	}
	e.SetFault("adele", Fault{Kind: FaultBlockedByCA, Count: 2})
	if got := e.Faults()["adele"].Count; got != 2 {
		t.Errorf("Faults count = %d", got)
	}
	if obo("megan") != 200 {
		t.Error("adele's fault hit megan")
	}
	for i, want := range []int{400, 400, 200} {
		if got := obo("adele"); got != want {
			t.Errorf("request %d: %d, want %d", i, got, want)
		}
	}
	if _, ok := e.Faults()["adele"]; ok {
		t.Error("counted fault not removed after its last use")
	}
	e.SetFault("*", Fault{Kind: FaultConsentRequired})
	e.SetFault("adele", Fault{Kind: FaultDown})
	if obo("megan") != 400 || obo("adele") != 503 {
		t.Error("global vs per-user precedence wrong")
	}
	// refresh-only kinds never fire on OBO; mfa is satisfied by an MFA sign-in.
	e.ClearFaults()
	e.SetFault("adele", Fault{Kind: FaultRefreshExpired})
	if obo("adele") != 200 {
		t.Error("refresh_token_expired fired on OBO")
	}
	e.SetFault("adele", Fault{Kind: FaultMFARequired, Count: 1})
	if res := postForm(e, v2Token, oboForm(mustMint(t, e, "adele", MintOptions{MFA: true}), "User.Read")); res.status != 200 {
		t.Errorf("MFA-satisfied assertion: %d", res.status)
	}
	if _, ok := e.Faults()["adele"]; !ok {
		t.Error("a satisfied fault consumed its count")
	}
	defer func() {
		if recover() == nil {
			t.Error("SetFault accepted an unknown kind")
		}
	}()
	e.SetFault("adele", Fault{Kind: "nonsense"})
}

func TestInfraFaults(t *testing.T) {
	e, _ := newTestEmulator(t)
	form := oboForm(mustMint(t, e, "adele", MintOptions{}), "User.Read")

	e.SetFault("", Fault{Kind: FaultThrottled, RetryAfter: 2500 * time.Millisecond})
	res := postForm(e, v2Token, form)
	if res.status != 429 || res.header.Get("Retry-After") != "3" || res.body != nil {
		t.Errorf("throttled: %d Retry-After=%q body=%q", res.status, res.header.Get("Retry-After"), res.raw)
	}

	e.SetFault("", Fault{Kind: FaultBadGateway})
	res = postForm(e, v2Token, form)
	if res.status != 502 || !strings.Contains(res.raw, "502 Bad Gateway") || !strings.HasPrefix(res.header.Get("Content-Type"), "text/html") {
		t.Errorf("bad gateway: %d %q", res.status, res.raw)
	}

	// A global outage answers before client authentication, as a down service would.
	e.SetFault("", Fault{Kind: FaultDown})
	bad := oboForm("x", "User.Read")
	bad.Set("client_secret", "wrong")
	checkError(t, postForm(e, v2Token, bad), 503, "temporarily_unavailable", 90033, "")

	e.SetFault("", Fault{Kind: FaultSlow, Delay: 150 * time.Millisecond, Count: 1})
	start := time.Now()
	if res := postForm(e, v2Token, form); res.status != 200 || time.Since(start) < 150*time.Millisecond {
		t.Errorf("slow: %d after %v", res.status, time.Since(start))
	}

	e.SetFault("adele", Fault{Kind: FaultSlow, Delay: 10 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req := httptest.NewRequestWithContext(ctx, http.MethodPost, v2Token, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	start = time.Now()
	serve(e, req)
	if time.Since(start) > 2*time.Second {
		t.Errorf("slow fault ignored the request context: %v", time.Since(start))
	}
}

func TestConnectionReset(t *testing.T) {
	e, _ := newTestEmulator(t)
	form := oboForm(mustMint(t, e, "adele", MintOptions{}), "User.Read")
	e.SetFault("adele", Fault{Kind: FaultConnectionReset, Count: 1})

	t.Run("plain HTTP", func(t *testing.T) {
		srv := httptest.NewServer(e)
		defer srv.Close()
		resp, err := http.PostForm(srv.URL+v2Token, form)
		if err == nil {
			resp.Body.Close()
			t.Fatalf("got a response (%d) instead of a reset", resp.StatusCode)
		}
		resp, err = http.PostForm(srv.URL+v2Token, form)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("after the counted reset: %v", err)
		}
		resp.Body.Close()
	})
	t.Run("HTTPS and HTTP/2", func(t *testing.T) {
		srv, err := e.Start(ListenOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer srv.Close()
		for _, h2 := range []bool{false, true} {
			e.SetFault("adele", Fault{Kind: FaultConnectionReset, Count: 1})
			tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: srv.CA.Pool()}, ForceAttemptHTTP2: h2}
			c := &http.Client{Transport: tr, Timeout: 5 * time.Second}
			resp, err := c.PostForm(srv.URL+v2Token, form)
			if err == nil {
				resp.Body.Close()
				t.Errorf("h2=%v: got %d (%s) instead of a reset", h2, resp.StatusCode, resp.Proto)
			}
			tr.CloseIdleConnections()
		}
	})
	if c := e.Counters(); c.Errors < 2 {
		t.Errorf("resets not counted as errors: %+v", c)
	}
}

func TestCORSOnTokenEndpoint(t *testing.T) {
	e, _ := newTestEmulator(t)
	req := httptest.NewRequest(http.MethodOptions, v2Token, nil)
	req.Header.Set("Origin", "https://localhost:3000")
	req.Header.Set("Access-Control-Request-Method", "POST")
	req.Header.Set("Access-Control-Request-Headers", "content-type,client-request-id")
	res := serve(e, req)
	if res.status != 204 || res.header.Get("Access-Control-Allow-Origin") != "https://localhost:3000" ||
		res.header.Get("Access-Control-Allow-Headers") != "content-type,client-request-id" {
		t.Errorf("preflight: %d %v", res.status, res.header)
	}
	res = postForm(e, v2Token, url.Values{}, "Origin", "https://localhost:3000")
	if res.header.Get("Access-Control-Allow-Origin") != "https://localhost:3000" {
		t.Error("error response lacks CORS headers")
	}
}
