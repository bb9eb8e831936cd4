package caddymodule_test

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/tokeninjector/caddy-token-injector/internal/dev/entraemu"
)

// scrape reads Caddy's admin /metrics and returns every caddy_token_injector_* sample by name{labels}, labels
// sorted; a histogram appears as its _count.
func scrape(t *testing.T) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + env.caddy.AdminAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("/metrics: %d", resp.StatusCode)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for name, f := range families {
		if !strings.HasPrefix(name, "caddy_token_injector_") {
			continue
		}
		for _, m := range f.Metric {
			key, value := sampleKey(name, m)
			out[key] = value
		}
	}
	return out
}

func sampleKey(name string, m *dto.Metric) (string, float64) {
	var labels []string
	for _, l := range m.Label {
		if l.GetValue() != "" {
			labels = append(labels, l.GetName()+"="+l.GetValue())
		}
	}
	sort.Strings(labels)
	key := name + "{" + strings.Join(labels, ",") + "}"
	switch {
	case m.Counter != nil:
		return key, m.Counter.GetValue()
	case m.Gauge != nil:
		return key, m.Gauge.GetValue()
	case m.Histogram != nil:
		return name + "_count{" + strings.Join(labels, ",") + "}", float64(m.Histogram.GetSampleCount())
	}
	return key, 0
}

// admin calls the token_injector admin API and returns the status and the raw JSON body.
func admin(t *testing.T, method, path string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, "http://"+env.caddy.AdminAddr+"/token_injector/"+path, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("%s %s: Content-Type %q, body %s", method, path, ct, body)
	}
	return resp.StatusCode, body
}

func TestMetricsCountScriptedTraffic(t *testing.T) {
	client := startCaddy(t)
	hits, mfa, down := freshUser(t), freshUser(t), freshUser(t)
	env.Emu.SetFault(mfa.Key, entraemu.Fault{Kind: entraemu.FaultMFARequired})
	env.Emu.SetFault(down.Key, entraemu.Fault{Kind: entraemu.FaultDown})
	before := scrape(t)

	sso := ssoToken(t, hits.Key, entraemu.MintOptions{})
	for i := range 3 { // a miss, then two hits
		if status, _, body := call(t, client, "/graph/me", sso); status != 200 {
			t.Fatalf("request %d: %d %v", i, status, body)
		}
	}
	if status, _, body := call(t, client, "/graph/me", ssoToken(t, mfa.Key, entraemu.MintOptions{})); status != 401 || body["reason"] != "mfa_required" {
		t.Fatalf("mfa: %d %v", status, body)
	}
	if status, _, body := call(t, client, "/graph/me", ssoToken(t, down.Key, entraemu.MintOptions{})); status != 503 {
		t.Fatalf("down: %d %v", status, body)
	}
	if status, _, _ := call(t, client, "/graph/me", "not-a-token"); status != 401 {
		t.Fatalf("malformed token: %d", status)
	}
	if status, _, _ := call(t, client, "/graph/me", tamper(sso)); status != 401 {
		t.Fatalf("tampered token: %d", status)
	}

	after := scrape(t)
	want := map[string]float64{
		"caddy_token_injector_cache_hits_total{}":                                                                            2,
		"caddy_token_injector_cache_misses_total{}":                                                                          3,
		"caddy_token_injector_acquisitions_total{outcome=ok,source=cache}":                                                   2,
		"caddy_token_injector_acquisitions_total{outcome=ok,source=identity_provider}":                                       1,
		"caddy_token_injector_acquisitions_total{outcome=interaction_required,reason=mfa_required,source=identity_provider}": 1,
		"caddy_token_injector_acquisitions_total{outcome=unavailable,reason=entra_error,source=identity_provider}":           1,
		"caddy_token_injector_identity_provider_duration_seconds_count{grant=on_behalf_of,outcome=ok}":                       1,
		"caddy_token_injector_identity_provider_duration_seconds_count{grant=on_behalf_of,outcome=interaction_required}":     1,
		"caddy_token_injector_identity_provider_duration_seconds_count{grant=on_behalf_of,outcome=unavailable}":              1,
		"caddy_token_injector_caller_rejections_total{reason=malformed}":                                                     1,
		"caddy_token_injector_caller_rejections_total{reason=signature}":                                                     1,
	}
	for key, delta := range want {
		if got := after[key] - before[key]; got != delta {
			t.Errorf("%s went up by %v, want %v", key, got, delta)
		}
	}
	if v, ok := after["caddy_token_injector_singleflight_waiters{}"]; !ok || v != 0 {
		t.Errorf("singleflight_waiters = %v (present %v), want 0 at rest", v, ok)
	}
	// The registration's gauge counts its cached tokens, as the admin API's stats do.
	id, stats := addinRegistration(t)
	if got := after["caddy_token_injector_cache_entries{registration="+id+"}"]; got < 1 || got > stats["cache_entries"].(float64)+5 {
		t.Errorf("cache_entries{registration=%s} = %v; stats say %v", id, got, stats["cache_entries"])
	}
	// No label carries a user or an error text.
	for key := range after {
		for _, u := range []entraemu.User{hits, mfa, down} {
			if strings.Contains(key, u.ObjectID) || strings.Contains(key, u.Key) {
				t.Errorf("a metric names a user: %s", key)
			}
		}
		if strings.ContainsAny(key, " :") {
			t.Errorf("a label looks like free text: %s", key)
		}
	}
}

// addinRegistration returns the id and stats of the integration config's shared registration (the add-in app's).
func addinRegistration(t *testing.T) (string, map[string]any) {
	t.Helper()
	status, body := admin(t, http.MethodGet, "registrations")
	if status != 200 {
		t.Fatalf("GET registrations: %d %s", status, body)
	}
	var regs []map[string]any
	if err := json.Unmarshal(body, &regs); err != nil {
		t.Fatal(err)
	}
	for _, r := range regs {
		if r["client_id"] == entraemu.DefaultAddinClientID && r["tenant"] == entraemu.DefaultTenantDomain &&
			r["authority_host"] == env.Server.URL {
			return r["id"].(string), r
		}
	}
	t.Fatalf("no add-in registration in %s", body)
	return "", nil
}

func TestAdminStatsHoldNoSecrets(t *testing.T) {
	client := startCaddy(t)
	sso := ssoToken(t, freshUser(t).Key, entraemu.MintOptions{})
	if status, _, _ := call(t, client, "/graph/me", sso); status != 200 {
		t.Fatal(status)
	}
	_, b := signedIn(t, signInSite)
	status, body := admin(t, http.MethodGet, "registrations")
	if status != 200 {
		t.Fatalf("%d %s", status, body)
	}
	env.mu.Lock()
	secrets := append([]string{env.secret, rotatedSecret, "other-api-secret", "not-the-secret",
		string(testCookieKey), fmt.Sprintf("%x", testCookieKey)}, env.minted...)
	env.mu.Unlock()
	for _, c := range b.Cookies(signInSite) {
		secrets = append(secrets, c.Value)
	}
	for _, s := range secrets {
		if s != "" && strings.Contains(string(body), s) {
			t.Fatalf("the stats hold a secret or token: %.40s…", s)
		}
	}
	_, stats := addinRegistration(t)
	engine := stats["engine"].(map[string]any)
	if stats["cache_entries"].(float64) < 1 || stats["sessions"].(float64) < 1 || engine["identity_provider_calls"].(float64) < 1 {
		t.Fatalf("stats do not count what the registration holds: %v", stats)
	}
}

func TestAdminSignsUserOutEverywhere(t *testing.T) {
	client := startCaddy(t)
	// A bearer caller: their next request needs a new On-Behalf-Of call.
	u := freshUser(t)
	sso := ssoToken(t, u.Key, entraemu.MintOptions{})
	call(t, client, "/graph/me", sso)
	call(t, client, "/api/data", sso)
	before := oboCalls()
	if status, _, _ := call(t, client, "/graph/me", sso); status != 200 || oboCalls() != before {
		t.Fatalf("not cached before the sign-out: %d, %d OBO calls", status, oboCalls()-before)
	}
	status, body := admin(t, http.MethodDelete, "users/"+u.ObjectID+"."+entraemu.DefaultTenantID)
	if status != 200 {
		t.Fatalf("DELETE user: %d %s", status, body)
	}
	if status, _, _ := call(t, client, "/graph/me", sso); status != 200 || oboCalls()-before != 1 {
		t.Fatalf("after the sign-out: %d, %d OBO calls, want 1", status, oboCalls()-before)
	}

	// A signed-in browser: the session is gone, everywhere it was.
	user, b := signedIn(t, signInSite)
	if status, _, _ := b.api(signInSite + "/graph/me"); status != 200 {
		t.Fatalf("signed in: %d", status)
	}
	status, body = admin(t, http.MethodDelete, "users/"+user.ObjectID+"."+entraemu.DefaultTenantID)
	var out map[string]any
	if status != 200 || json.Unmarshal(body, &out) != nil || out["sessions_deleted"].(float64) != 1 {
		t.Fatalf("DELETE user: %d %s", status, body)
	}
	if status, _, got := b.api(signInSite + "/graph/me"); status != 401 || got["reason"] != "login_required" {
		t.Fatalf("after the sign-out the session still serves: %d %v", status, got)
	}
}

func TestAdminAPIErrors(t *testing.T) {
	startCaddy(t)
	tests := []struct {
		method, path string
		status       int
	}{
		{http.MethodDelete, "users/not-a-user", 400},
		{http.MethodDelete, "users/" + entraemu.DefaultTenantID, 400},
		{http.MethodGet, "users/" + entraemu.DefaultTenantID + "." + entraemu.DefaultTenantID, 405},
		{http.MethodDelete, "registrations", 405},
		{http.MethodDelete, "registrations/000000000000/tokens", 404},
		{http.MethodGet, "nothing", 404},
	}
	for _, tt := range tests {
		status, body := admin(t, tt.method, tt.path)
		var e map[string]any
		if status != tt.status || json.Unmarshal(body, &e) != nil || e["error"] == "" {
			t.Errorf("%s %s: %d %s, want %d with a JSON error", tt.method, tt.path, status, body, tt.status)
		}
	}
}

func TestAdminFlushesRegistrationCache(t *testing.T) {
	client := startCaddy(t)
	sso := ssoToken(t, freshUser(t).Key, entraemu.MintOptions{})
	call(t, client, "/graph/me", sso)
	id, _ := addinRegistration(t)
	status, body := admin(t, http.MethodDelete, "registrations/"+id+"/tokens")
	var out map[string]any
	if status != 200 || json.Unmarshal(body, &out) != nil || out["tokens_deleted"].(float64) < 1 {
		t.Fatalf("flush: %d %s", status, body)
	}
	if _, stats := addinRegistration(t); stats["cache_entries"].(float64) != 0 {
		t.Fatalf("after the flush the cache holds %v tokens", stats["cache_entries"])
	}
	before := oboCalls()
	if status, _, _ := call(t, client, "/graph/me", sso); status != 200 || oboCalls()-before != 1 {
		t.Fatalf("after the flush: %d, %d OBO calls, want 1", status, oboCalls()-before)
	}
}

func TestMetricsSurviveReload(t *testing.T) {
	client := startCaddy(t)
	sso := ssoToken(t, freshUser(t).Key, entraemu.MintOptions{})
	call(t, client, "/graph/me", sso)
	before := scrape(t)
	// Another config: every handler is provisioned again and registers in the new load's registry.
	loadConfig(t, siteConfig(errorRoutes+"\n\troute /reloaded/* {\n\t\ttoken_injector https://graph.microsoft.com/User.Read\n\t}"))
	call(t, client, "/graph/me", sso)
	after := scrape(t)
	const hitsKey = "caddy_token_injector_cache_hits_total{}"
	if after[hitsKey]-before[hitsKey] != 1 {
		t.Fatalf("cache hits across the reload: %v then %v, want one more", before[hitsKey], after[hitsKey])
	}
	if !slices.ContainsFunc(slices.Collect(maps.Keys(after)), func(k string) bool { return strings.HasPrefix(k, "caddy_token_injector_cache_entries{") }) {
		t.Fatal("no cache_entries gauge after the reload")
	}
}
