package sidecar

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"

	"go.uber.org/zap"
)

func TestAllowedCallers(t *testing.T) {
	s := &Server{cfg: Config{AllowedNetworks: []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16")}}}
	for addr, want := range map[string]bool{
		"127.0.0.1:5000":          true,
		"127.9.9.9:5000":          true,
		"[::1]:5000":              true,
		"[::ffff:127.0.0.1]:5000": true, // IPv4-mapped loopback, as LocalCallerRestriction.IsLocal normalizes it
		"@":                       true, // a Unix socket peer
		"10.1.2.3:5000":           true,
		"10.2.0.1:5000":           false,
		"192.0.2.7:5000":          false,
		"[2001:db8::1]:5000":      false,
		"not-an-address":          false,
	} {
		r := httptest.NewRequest(http.MethodGet, "/Validate", nil)
		r.RemoteAddr = addr
		if got := s.allowed(r); got != want {
			t.Errorf("%s: allowed = %v, want %v", addr, got, want)
		}
	}
}

func TestParseOverrides(t *testing.T) {
	tests := []struct {
		query    string
		any      bool
		scopes   []string
		appToken bool
		tenant   string
		err      string
	}{
		{query: "", any: false},
		{query: "optionsOverride.BaseUrl=https://evil.example", any: false}, // always ignored, not even "any"
		{query: "optionsOverride.Scopes=a/b&optionsOverride.Scopes=c/d", any: true, scopes: []string{"a/b", "c/d"}},
		{query: "OPTIONSOVERRIDE.scopes=a/b", any: true, scopes: []string{"a/b"}},
		{query: "optionsOverride.RequestAppToken=True", any: true, appToken: true},
		{query: "optionsOverride.RequestAppToken=yes", any: true, appToken: false},
		{query: "optionsOverride.AcquireTokenOptions.Tenant=contoso.onmicrosoft.com", any: true, tenant: "contoso.onmicrosoft.com"},
		{query: "optionsOverride.AcquireTokenOptions.Tenant=common", err: "not one directory"},
		{query: "optionsOverride.RelativePath=me&optionsOverride.HttpMethod=POST", any: true},
		{query: "optionsOverride.AcquireTokenOptions.Claims=x", err: "not supported"},
		{query: "AgentIdentity=x", err: "agent identities"},
		{query: "optionsOverride.Scopes=" + url.QueryEscape("a b"), err: "not a scope"},
		// a NUL or other control byte would let two (tenant, scopes) pairs name one cache entry
		{query: "optionsOverride.Scopes=" + url.QueryEscape("tenant:t\x00s"), err: "not a scope"},
		{query: "optionsOverride.Scopes=" + url.QueryEscape("s\x7f"), err: "not a scope"},
		{query: strings.Repeat("optionsOverride.Scopes=s/x&", 21), err: "at most 20"},
	}
	for _, tt := range tests {
		q, _ := url.ParseQuery(tt.query)
		o, err := parseOverrides(q)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%q: err %v, want %q", tt.query, err, tt.err)
			}
			continue
		}
		if err != nil || o.any != tt.any || strings.Join(o.scopes, " ") != strings.Join(tt.scopes, " ") ||
			o.appToken != tt.appToken || o.tenant != tt.tenant {
			t.Errorf("%q: %+v, %v", tt.query, o, err)
		}
	}
}

func TestParseAPIs(t *testing.T) {
	apis, err := ParseAPIs("graph base_url=https://graph.microsoft.com/v1.0 https://graph.microsoft.com/User.Read ; " +
		"jobs app_token api://jobs/.default;")
	if err != nil || len(apis) != 2 {
		t.Fatalf("%v %v", apis, err)
	}
	if a := apis[0]; a.Name != "graph" || a.BaseURL != "https://graph.microsoft.com/v1.0" || len(a.Scopes) != 1 || a.RequestAppToken {
		t.Errorf("graph: %+v", a)
	}
	if a := apis[1]; a.Name != "jobs" || !a.RequestAppToken || a.Scopes[0] != "api://jobs/.default" {
		t.Errorf("jobs: %+v", a)
	}
	for _, bad := range []string{"graph", "Validate s/x", "x base_url=ftp://h s/x", "a/b s/x"} {
		if _, err := ParseAPIs(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestJoinPathStaysUnderBase(t *testing.T) {
	for rest, want := range map[string]string{
		"me":            "/v1.0/me",
		"me/":           "/v1.0/me/",
		"../../beta/me": "/v1.0/beta/me",
		"a/./b/../c":    "/v1.0/a/c",
		"":              "/v1.0/",
	} {
		if got := joinPath("/v1.0", rest); got != want {
			t.Errorf("%q: %q, want %q", rest, got, want)
		}
	}
}

// Endpoint paths match as ASP.NET Core routes do, case-insensitively; a remote caller is refused on each.
func TestEndpointPathsIgnoreCase(t *testing.T) {
	s, err := New(Config{Callers: nil, Tokens: nil})
	if err == nil || s != nil {
		t.Fatal("a server without callers and tokens must be refused")
	}
	srv := &Server{cfg: Config{}, apis: map[string]*API{}}
	srv.logger = zap.NewNop()
	for _, p := range []string{"/validate", "/authorizationheader/graph", "/AUTHORIZATIONHEADERUNAUTHENTICATED/graph"} {
		r := httptest.NewRequest(http.MethodGet, p, nil)
		r.RemoteAddr = "192.0.2.7:1234"
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, r)
		if w.Code != http.StatusForbidden {
			t.Errorf("%s from a remote caller: %d, want 403", p, w.Code)
		}
	}
	for _, p := range []string{"/HealthZ", "/readyz"} {
		r := httptest.NewRequest(http.MethodGet, p, nil)
		r.RemoteAddr = "192.0.2.7:1234"
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, r)
		if w.Code != http.StatusOK {
			t.Errorf("%s from a remote caller: %d, want 200", p, w.Code)
		}
	}
}
