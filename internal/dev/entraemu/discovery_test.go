package entraemu_test

import (
	"crypto/rsa"
	"encoding/base64"
	"math/big"
	"net/http/httptest"
	"strings"
	"testing"

	. "github.com/tokeninjector/caddy-token-injector/internal/dev/entraemu"
)

var (
	v2Fields = []string{"token_endpoint", "token_endpoint_auth_methods_supported", "jwks_uri", "response_modes_supported",
		"subject_types_supported", "id_token_signing_alg_values_supported", "response_types_supported", "scopes_supported",
		"issuer", "request_uri_parameter_supported", "userinfo_endpoint", "authorization_endpoint",
		"device_authorization_endpoint", "http_logout_supported", "frontchannel_logout_supported", "end_session_endpoint",
		"claims_supported", "kerberos_endpoint", "tenant_region_scope", "cloud_instance_name", "cloud_graph_host_name",
		"msgraph_host", "rbac_url"}
	v1Fields = append(v2Fields[:9:9], "microsoft_multi_refresh_token", "authorization_endpoint", "device_authorization_endpoint",
		"http_logout_supported", "frontchannel_logout_supported", "end_session_endpoint", "claims_supported",
		"check_session_iframe", "userinfo_endpoint", "kerberos_endpoint", "tenant_region_scope", "cloud_instance_name",
		"cloud_graph_host_name", "msgraph_host", "rbac_url")
)

func TestDiscovery(t *testing.T) {
	e, _ := newTestEmulator(t)
	const b = "https://login.test"
	tid := DefaultTenantID
	cases := []struct {
		name, path      string
		fields          []string
		issuer, token   string
		jwks, authorize string
		regionNull      bool
	}{
		{"v2 by id", "/" + tid + "/v2.0/.well-known/openid-configuration", v2Fields,
			b + "/" + tid + "/v2.0", b + "/" + tid + "/oauth2/v2.0/token", b + "/" + tid + "/discovery/v2.0/keys", b + "/" + tid + "/oauth2/v2.0/authorize", false},
		{"v2 by domain names the GUID", "/Contoso.onmicrosoft.com/v2.0/.well-known/openid-configuration", v2Fields,
			b + "/" + tid + "/v2.0", b + "/" + tid + "/oauth2/v2.0/token", b + "/" + tid + "/discovery/v2.0/keys", b + "/" + tid + "/oauth2/v2.0/authorize", false},
		{"v2 common", "/common/v2.0/.well-known/openid-configuration", v2Fields,
			b + "/{tenantid}/v2.0", b + "/common/oauth2/v2.0/token", b + "/common/discovery/v2.0/keys", b + "/common/oauth2/v2.0/authorize", true},
		{"v2 organizations", "/organizations/v2.0/.well-known/openid-configuration", v2Fields,
			b + "/{tenantid}/v2.0", b + "/organizations/oauth2/v2.0/token", b + "/organizations/discovery/v2.0/keys", b + "/organizations/oauth2/v2.0/authorize", true},
		{"v1 by id", "/" + tid + "/.well-known/openid-configuration", v1Fields,
			"https://sts.windows.net/" + tid + "/", b + "/" + tid + "/oauth2/token", b + "/common/discovery/keys", b + "/" + tid + "/oauth2/authorize", false},
		{"v1 common", "/common/.well-known/openid-configuration", v1Fields,
			"https://sts.windows.net/{tenantid}/", b + "/common/oauth2/token", b + "/common/discovery/keys", b + "/common/oauth2/authorize", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := get(e, tc.path, "Origin", "https://addin.example")
			if res.status != 200 {
				t.Fatalf("status %d: %s", res.status, res.raw)
			}
			for _, f := range tc.fields {
				if _, ok := res.body[f]; !ok {
					t.Errorf("field %s missing", f)
				}
			}
			if len(res.body) != len(tc.fields) {
				t.Errorf("%d fields, want %d", len(res.body), len(tc.fields))
			}
			for k, want := range map[string]string{"issuer": tc.issuer, "token_endpoint": tc.token, "jwks_uri": tc.jwks, "authorization_endpoint": tc.authorize} {
				if res.body[k] != want {
					t.Errorf("%s = %v, want %s", k, res.body[k], want)
				}
			}
			if (res.body["tenant_region_scope"] == nil) != tc.regionNull {
				t.Errorf("tenant_region_scope = %v", res.body["tenant_region_scope"])
			}
			if res.body["cloud_instance_name"] != "microsoftonline.com" || res.body["msgraph_host"] != "graph.microsoft.com" {
				t.Errorf("cloud fields: %s", res.raw)
			}
			if res.header.Get("Access-Control-Allow-Origin") != "https://addin.example" {
				t.Errorf("CORS origin not echoed")
			}
		})
	}
	t.Run("unknown tenant", func(t *testing.T) {
		checkError(t, get(e, "/fabrikam.example/v2.0/.well-known/openid-configuration"), 400, "invalid_tenant", 90002, "")
	})
	t.Run("base URL from the request when not set", func(t *testing.T) {
		e2, _ := newTestEmulator(t)
		e2.ForgetBaseURL()
		req := httptest.NewRequest("GET", "http://127.0.0.1:9999/"+tid+"/v2.0/.well-known/openid-configuration", nil)
		if res := serve(e2, req); res.body["issuer"] != "http://127.0.0.1:9999/"+tid+"/v2.0" {
			t.Errorf("issuer = %v", res.body["issuer"])
		}
	})
	if c := e.Counters().Discovery; c != len(cases)+1 {
		t.Errorf("Discovery counter = %d", c)
	}
}

func TestKeys(t *testing.T) {
	e, _ := newTestEmulator(t)
	pub := e.PublicKeys()
	if len(pub.Keys) != 1 || pub.Keys[0].KeyID != e.SigningKeyID() || pub.Keys[0].Use != "sig" {
		t.Fatalf("PublicKeys = %+v", pub)
	}
	rsaPub := pub.Keys[0].Key.(*rsa.PublicKey)
	cases := []struct {
		path   string
		issuer string
	}{
		{"/" + DefaultTenantID + "/discovery/v2.0/keys", "https://login.test/" + DefaultTenantID + "/v2.0"},
		{"/common/discovery/v2.0/keys", "https://login.test/{tenantid}/v2.0"},
		{"/common/discovery/keys", ""},
		{"/" + DefaultTenantID + "/discovery/keys", ""},
	}
	for _, tc := range cases {
		t.Run(tc.path, func(t *testing.T) {
			res := get(e, tc.path)
			keys, _ := res.body["keys"].([]any)
			if res.status != 200 || len(keys) != 1 {
				t.Fatalf("%d %s", res.status, res.raw)
			}
			k := keys[0].(map[string]any)
			for _, f := range []string{"kty", "use", "kid", "x5t", "n", "e", "x5c"} {
				if _, ok := k[f]; !ok {
					t.Errorf("field %s missing", f)
				}
			}
			if k["kty"] != "RSA" || k["use"] != "sig" || k["kid"] != e.SigningKeyID() || k["x5t"] != e.SigningKeyID() || k["e"] != "AQAB" {
				t.Errorf("key = %v", k)
			}
			n, _ := base64.RawURLEncoding.DecodeString(str(k["n"]))
			if new(big.Int).SetBytes(n).Cmp(rsaPub.N) != 0 {
				t.Error("n does not match the signing key")
			}
			if str(k["issuer"]) != tc.issuer {
				t.Errorf("issuer = %v, want %q", k["issuer"], tc.issuer)
			}
			x5c, _ := k["x5c"].([]any)
			if len(x5c) != 1 || strings.ContainsAny(str(x5c[0]), "-_") {
				t.Errorf("x5c must be standard base64 DER: %v", x5c)
			}
		})
	}
	if e.Counters().JWKS != len(cases) {
		t.Errorf("JWKS counter = %d", e.Counters().JWKS)
	}
}

func TestNewGeneratesKeyAndValidates(t *testing.T) {
	cfg := DefaultConfig()
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if e.SigningKeyBits() != 2048 || len(e.SigningKeyID()) != 27 {
		t.Errorf("key bits %d kid %q", e.SigningKeyBits(), e.SigningKeyID())
	}
	if e.TenantID() != DefaultTenantID || len(cfg.Users) < 12 {
		t.Errorf("tenant %s users %d", e.TenantID(), len(cfg.Users))
	}
	bad := []func(*Config){
		func(c *Config) { c.TenantID = "contoso" },
		func(c *Config) { c.TenantDomain = "" },
		func(c *Config) { c.Users = append(c.Users, c.Users[0]) },
		func(c *Config) { c.Apps[0].ClientID = "x" },
		func(c *Config) { c.SigningKey = "not a key" },
		func(c *Config) { c.AccessTokenLifetime = -1 },
	}
	for i, m := range bad {
		c := DefaultConfig()
		c.SigningKey = sharedKey(t)
		m(&c)
		if _, err := New(c); err == nil {
			t.Errorf("bad config %d accepted", i)
		}
	}
}

func TestNewCopiesConfigAndMergesAppResources(t *testing.T) {
	cfg := DefaultConfig()
	cfg.SigningKey = sharedKey(t)
	cfg.Apps = append(cfg.Apps, App{ClientID: DefaultDownstreamAppID, Secret: "ds", Name: "downstream-api"})
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Users[0].UPN = "changed@example.com"
	cfg.Apps[0].RequiredPermissions[GraphURI][0] = "Mail.Send"
	if e.UserByKey("adele").UPN == "changed@example.com" || e.AppByID(DefaultAddinClientID).RequiredPermissions[GraphURI][0] != "User.Read" {
		t.Error("New shares the caller's slices or maps")
	}
	if version, scopes, ok := e.ResourceShape(DefaultDownstreamURI); !ok || version != 2 || scopes != 2 {
		t.Errorf("downstream resource: version %d, %d scopes, known %v", version, scopes, ok)
	}
	cfg.Resources = append(cfg.Resources, cfg.Resources[0])
	if _, err := New(cfg); err == nil {
		t.Error("duplicate resource accepted")
	}
}
