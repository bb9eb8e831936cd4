package caddymodule_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokeninjector/caddy-token-injector/internal/dev/entraemu"
)

func TestInjectsTokenAndCachesPerUser(t *testing.T) {
	client := startCaddy(t)
	adele := userByKey(t, "adele")
	sso := ssoToken(t, "adele", entraemu.MintOptions{})
	before, seenBefore := oboCalls(), len(env.Upstream.Seen())

	status, _, body := call(t, client, "/graph/me", sso)
	if status != 200 || body["oid"] != adele.ObjectID || body["aud"] != entraemu.GraphURI {
		t.Fatalf("first call: %d %v", status, body)
	}
	for range 5 {
		if status, _, body = call(t, client, "/graph/me", sso); status != 200 || body["oid"] != adele.ObjectID {
			t.Fatalf("cached call: %d %v", status, body)
		}
	}
	// A new SSO token of the same, already proven user hits the same cache entry.
	if status, _, _ = call(t, client, "/graph/me", ssoToken(t, "adele", entraemu.MintOptions{})); status != 200 {
		t.Fatalf("fresh SSO token: %d", status)
	}
	if n := oboCalls() - before; n != 1 {
		t.Fatalf("%d OBO calls for 7 requests of one user, want 1", n)
	}
	// Another scope set is another entry.
	if status, _, body = call(t, client, "/api/data", sso); status != 200 || body["aud"] != entraemu.DefaultDownstreamAppID || body["scp"] != "Data.Read" {
		t.Fatalf("/api: %d %v", status, body)
	}
	if n := oboCalls() - before; n != 2 {
		t.Fatalf("%d OBO calls after a second scope set, want 2", n)
	}
	// The caller's token never reaches the upstream; the downstream token does.
	for _, h := range env.Upstream.Seen()[seenBefore:] {
		for name, values := range h {
			for _, v := range values {
				if strings.Contains(v, sso) {
					t.Fatalf("upstream received the caller's token in %s", name)
				}
			}
		}
		if !strings.HasPrefix(h.Get("Authorization"), "Bearer ey") {
			t.Fatalf("upstream Authorization %q", h.Get("Authorization"))
		}
	}
}

func TestConcurrentFirstRequestsOneOBOCall(t *testing.T) {
	client := startCaddy(t)
	env.Emu.SetFault("megan", entraemu.Fault{Kind: entraemu.FaultSlow, Delay: 200 * time.Millisecond})
	sso := ssoToken(t, "megan", entraemu.MintOptions{})
	before := oboCalls()
	var wg sync.WaitGroup
	statuses := make([]int, 50)
	for i := range statuses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses[i], _, _ = call(t, client, "/graph/me", sso)
		}()
	}
	wg.Wait()
	for i, s := range statuses {
		if s != 200 {
			t.Fatalf("request %d: status %d", i, s)
		}
	}
	if n := oboCalls() - before; n != 1 {
		t.Fatalf("50 concurrent first requests made %d OBO calls, want 1", n)
	}
}

func TestManyUsersInterleavedGetTheirOwnTokens(t *testing.T) {
	client := startCaddy(t)
	users := entraemu.DefaultConfig().Users[2:14] // 12 users not used by other tests
	tokens := map[string]string{}
	for _, u := range users {
		tokens[u.Key] = ssoToken(t, u.Key, entraemu.MintOptions{})
	}
	before := oboCalls()
	var wg sync.WaitGroup
	var mu sync.Mutex
	mismatches, failures := 0, 0
	for round := range 8 {
		for _, u := range users {
			wg.Add(1)
			go func() {
				defer wg.Done()
				path := "/graph/me"
				if round%2 == 1 {
					path = "/api/data"
				}
				status, _, body := call(t, client, path, tokens[u.Key])
				mu.Lock()
				defer mu.Unlock()
				switch {
				case status != 200:
					failures++
				case body["oid"] != u.ObjectID || body["upn"] != u.UPN:
					mismatches++
				}
			}()
		}
	}
	wg.Wait()
	if mismatches != 0 || failures != 0 {
		t.Fatalf("%d requests carried another user's token, %d failed", mismatches, failures)
	}
	if n := oboCalls() - before; n != 2*len(users) {
		t.Fatalf("%d OBO calls, want one per user and scope set = %d", n, 2*len(users))
	}
}

func TestBadCallerTokensNeverReachEntra(t *testing.T) {
	client := startCaddy(t)
	valid := ssoToken(t, "lee", entraemu.MintOptions{})
	other, err := entraemu.New(entraemu.DefaultConfig()) // same tenant and claims, different signing key
	if err != nil {
		t.Fatal(err)
	}
	foreign, _ := other.MintAccessToken("lee", entraemu.MintOptions{})
	tests := []struct {
		name, header, wantDescription string
	}{
		{"missing", "", "missing bearer token"},
		{"basic scheme", "Basic dXNlcjpwYXNz", "missing bearer token"},
		{"garbage", "Bearer not-a-jwt", "malformed"},
		{"expired", "Bearer " + ssoToken(t, "lee", entraemu.MintOptions{Lifetime: -10 * time.Minute}), "expired"},
		{"not yet valid", "Bearer " + ssoToken(t, "lee", entraemu.MintOptions{NotBefore: time.Now().Add(10 * time.Minute)}), "not valid yet"},
		{"wrong audience", "Bearer " + ssoToken(t, "lee", entraemu.MintOptions{Audience: entraemu.GraphURI}), "audience"},
		{"wrong issuer", "Bearer " + ssoToken(t, "lee", entraemu.MintOptions{ExtraClaims: map[string]any{"iss": "https://sts.windows.net/evil/"}}), "issuer"},
		{"wrong tenant", "Bearer " + ssoToken(t, "lee", entraemu.MintOptions{ExtraClaims: map[string]any{"tid": "72f988bf-86f1-41af-91ab-2d7cd011db47"}}), "tenant"},
		{"app-only token", "Bearer " + ssoToken(t, "lee", entraemu.MintOptions{ExtraClaims: map[string]any{"scp": nil, "roles": []string{"x"}}}), "delegated"},
		{"signed by another key", "Bearer " + foreign, "signing key"},
		{"tampered payload", "Bearer " + tamper(valid), "signature"},
		{"alg none", "Bearer " + withAlg(valid, "none", ""), "not allowed"},
		{"HS256", "Bearer " + withAlg(valid, "HS256", "key"), "not allowed"},
	}
	before := tokenRequests()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seenBefore := env.Upstream.Requests()
			req, _ := http.NewRequest(http.MethodGet, siteBase+"/graph/me", nil)
			if tt.header != "" {
				req.Header.Set("Authorization", tt.header)
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			wa := resp.Header.Get("WWW-Authenticate")
			if resp.StatusCode != 401 || !strings.HasPrefix(wa, `Bearer error="invalid_token"`) || !strings.Contains(wa, tt.wantDescription) {
				t.Fatalf("status %d, WWW-Authenticate %q", resp.StatusCode, wa)
			}
			// This case's request, and so its credential, never reached the upstream.
			if n := env.Upstream.Requests() - seenBefore; n != 0 {
				t.Fatalf("%d requests reached the upstream for a refused caller token", n)
			}
			if cred := strings.TrimPrefix(strings.TrimPrefix(tt.header, "Bearer "), "Basic "); cred != "" {
				for _, h := range env.Upstream.Seen() {
					if strings.Contains(h.Get("Authorization"), cred) {
						t.Fatal("the refused credential reached the upstream")
					}
				}
			}
		})
	}
	if n := tokenRequests() - before; n != 0 {
		t.Fatalf("%d token requests reached Entra for bad caller tokens", n)
	}
}

func TestEntraErrorsFollowTheContract(t *testing.T) {
	client := startCaddy(t)
	tests := []struct {
		name       string
		fault      entraemu.Fault
		path       string
		mint       entraemu.MintOptions
		status     int
		code       string
		reason     string
		wantClaims bool
		retryAfter string
	}{
		{name: "mfa", fault: entraemu.Fault{Kind: entraemu.FaultMFARequired}, path: "/graph/me", status: 401, code: "interaction_required", reason: "mfa_required", wantClaims: true},
		{name: "consent", fault: entraemu.Fault{Kind: entraemu.FaultConsentRequired}, path: "/graph/me", status: 401, code: "interaction_required", reason: "consent_required"},
		{name: "blocked by conditional access", fault: entraemu.Fault{Kind: entraemu.FaultBlockedByCA}, path: "/graph/me", status: 403, code: "access_denied"},
		{name: "sso token expired in flight", path: "/graph/me", mint: entraemu.MintOptions{Lifetime: -20 * time.Second}, status: 401, code: "interaction_required", reason: "sso_token_expired"},
		{name: "entra down", fault: entraemu.Fault{Kind: entraemu.FaultDown}, path: "/graph/me", status: 503, code: "temporarily_unavailable"},
		{name: "throttled", fault: entraemu.Fault{Kind: entraemu.FaultThrottled, RetryAfter: 7 * time.Second}, path: "/graph/me", status: 503, code: "temporarily_unavailable", retryAfter: "7"},
		{name: "bad gateway", fault: entraemu.Fault{Kind: entraemu.FaultBadGateway}, path: "/graph/me", status: 503, code: "temporarily_unavailable"},
		{name: "connection reset", fault: entraemu.Fault{Kind: entraemu.FaultConnectionReset}, path: "/graph/me", status: 503, code: "temporarily_unavailable"},
		{name: "timeout", fault: entraemu.Fault{Kind: entraemu.FaultSlow, Delay: 2 * time.Second}, path: "/quick/me", status: 504, code: "temporarily_unavailable"},
		{name: "wrong client secret", path: "/badsecret/me", status: 502, code: "server_error"},
		{name: "unknown app", path: "/badapp/me", status: 502, code: "server_error"},
		{name: "invalid scope", path: "/badscope/me", status: 502, code: "server_error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			user := freshUser(t).Key // nothing cached yet
			if tt.fault.Kind != "" {
				env.Emu.SetFault(user, tt.fault)
			}
			status, h, body := call(t, client, tt.path, ssoToken(t, user, tt.mint))
			env.Emu.ClearFaults()
			if status != tt.status || body["error"] != tt.code || (tt.reason != "" && body["reason"] != tt.reason) {
				t.Fatalf("got %d %v", status, body)
			}
			if tt.code == "interaction_required" {
				if h.Get("Content-Type") != "application/json" || !strings.HasPrefix(h.Get("WWW-Authenticate"), `Bearer error="interaction_required"`) {
					t.Fatalf("headers %v", h)
				}
				if body["correlation_id"] == nil || body["scopes"] == nil {
					t.Fatalf("body lacks correlation_id or scopes: %v", body)
				}
			}
			if tt.wantClaims {
				claims, _ := body["claims"].(string)
				if !strings.Contains(claims, `"access_token"`) || !strings.Contains(h.Get("WWW-Authenticate"), `claims="`) {
					t.Fatalf("claims challenge lost: body %v, header %q", body, h.Get("WWW-Authenticate"))
				}
			}
			if tt.retryAfter != "" && h.Get("Retry-After") != tt.retryAfter {
				t.Fatalf("Retry-After %q, want %q", h.Get("Retry-After"), tt.retryAfter)
			}
			// A failure is never cached: once Entra recovers, the next request succeeds.
			if tt.status == 401 && tt.reason != "sso_token_expired" || tt.status >= 503 {
				if status, _, body := call(t, client, tt.path, ssoToken(t, user, entraemu.MintOptions{})); status != 200 {
					t.Fatalf("after the fault cleared: %d %v", status, body)
				}
			}
		})
	}
}

func TestConfigurationErrorsAreLoggedWithTheFix(t *testing.T) {
	client := startCaddy(t)
	call(t, client, "/badsecret/me", ssoToken(t, "nestor", entraemu.MintOptions{}))
	waitUntil(t, "the log line", func() bool {
		logs := readLogs()
		return strings.Contains(logs, "AADSTS7000215") && strings.Contains(logs, "client_secret")
	})
}

func TestReloadKeepsTheCache(t *testing.T) {
	client := startCaddy(t)
	sso := ssoToken(t, "patti", entraemu.MintOptions{})
	if status, _, _ := call(t, client, "/graph/me", sso); status != 200 {
		t.Fatal(status)
	}
	before := oboCalls()
	// A reload with a changed site (a new route) but the same registration.
	loadConfig(t, siteConfig(errorRoutes+"\n\trespond /health 200"))
	if status, _, _ := call(t, client, "/graph/me", sso); status != 200 {
		t.Fatal(status)
	}
	if n := oboCalls() - before; n != 0 {
		t.Fatalf("%d OBO calls after a reload, want 0", n)
	}
}

func TestAccessLogNamesTheUser(t *testing.T) {
	client := startCaddy(t)
	pradeep := userByKey(t, "pradeep")
	call(t, client, "/graph/me", ssoToken(t, "pradeep", entraemu.MintOptions{}))
	waitUntil(t, "the access log entry", func() bool {
		return strings.Contains(readLogs(), fmt.Sprintf(`"user_id":"%s"`, pradeep.ObjectID))
	})
}

// A reload that changes tuning settings and rotates the client secret keeps every cached token and session: no
// identity-provider call for cached users, and the signed-in browser stays signed in.
func TestReloadWithNewSettingsAndSecretKeepsTokensAndSessions(t *testing.T) {
	client := startCaddy(t)
	sso := ssoToken(t, "isaiah", entraemu.MintOptions{})
	if status, _, body := call(t, client, "/graph/me", sso); status != 200 {
		t.Fatalf("%d %v", status, body)
	}
	user := freshUser(t)
	b := newBrowser(t)
	if status, _, body := b.signIn(signInSite+"/graph/me", user.Key); status != 200 {
		t.Fatalf("sign-in: %d %.300s", status, body)
	}
	before := tokenRequests()

	t.Setenv("TOKEN_INJECTOR_TEST_SECRET", rotatedSecret)
	reloaded := strings.Replace(siteConfig(errorRoutes), "timeout 3s", "timeout 4s\n\t\trefresh_before 10m", 1)
	if reloaded == siteConfig(errorRoutes) {
		t.Fatal("the reload changed nothing")
	}
	loadConfig(t, reloaded)
	t.Cleanup(func() { loadConfig(t, siteConfig(errorRoutes)) })

	if status, _, body := call(t, client, "/graph/me", ssoToken(t, "isaiah", entraemu.MintOptions{})); status != 200 {
		t.Fatalf("cached bearer user after the reload: %d %v", status, body)
	}
	if status, _, body := b.api(signInSite + "/graph/me"); status != 200 || body["oid"] != user.ObjectID {
		t.Fatalf("session after the reload: %d %v", status, body)
	}
	if n := tokenRequests() - before; n != 0 {
		t.Fatalf("%d identity-provider calls after the reload, want 0", n)
	}
	// That the rotated secret is the one sent is entra's TestUpdateSwitchesTheSecret.
}
