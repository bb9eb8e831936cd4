package callerauth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/tokeninjector/caddy-token-injector/internal/identity"
)

func TestValidateClaims(t *testing.T) {
	ti, clock, v := newWarmValidator(t)
	now := clock.Now()

	with := func(base func(time.Time) map[string]any, f func(c map[string]any)) map[string]any {
		c := base(now)
		f(c)
		return c
	}
	tests := []struct {
		name    string
		claims  map[string]any
		wantErr string // "" = valid
		check   func(t *testing.T, id *Identity)
	}{
		{name: "valid v2 (MSAL.js / NAA)", claims: v2Claims(now), check: func(t *testing.T, id *Identity) {
			want := Identity{User: identity.User{TenantID: testTID, ObjectID: testOID, Username: "adele@contoso.com", Name: "Adele Vance"},
				Scopes: []string{"access_as_user"}, ClientID: "11111111-aaaa-bbbb-cccc-222222222222",
				ExpiresAt: time.Unix(now.Add(time.Hour).Unix(), 0)}
			if !identityEqual(*id, want) {
				t.Errorf("identity = %+v, want %+v", *id, want)
			}
		}},
		{name: "valid v1 (Office SSO)", claims: v1Claims(now), check: func(t *testing.T, id *Identity) {
			if id.Username != "adele@contoso.com" || id.ClientID != "ea5a67f6-b6f3-4338-b240-c655ddc3cc8e" ||
				!slices.Equal(id.Scopes, []string{"access_as_user", "Files.Read"}) {
				t.Errorf("identity = %+v", *id)
			}
		}},
		{name: "v1 with only unique_name", claims: with(v1Claims, func(c map[string]any) { delete(c, "upn") }),
			check: func(t *testing.T, id *Identity) {
				if id.Username != "adele@contoso.com" {
					t.Errorf("Username = %q", id.Username)
				}
			}},
		{name: "aud array with an accepted value", claims: with(v2Claims, func(c map[string]any) { c["aud"] = []string{"other", testAppIDURI} })},
		{name: "audience in another case", claims: with(v2Claims, func(c map[string]any) { c["aud"] = strings.ToUpper(testAppIDURI) })},
		{name: "issuer in another case", claims: with(v2Claims, func(c map[string]any) { c["iss"] = strings.ToUpper(testV2Issuer) })},
		{name: "no ver claim", claims: with(v2Claims, func(c map[string]any) { delete(c, "ver") })},
		{name: "no nbf claim", claims: with(v2Claims, func(c map[string]any) { delete(c, "nbf") })},
		{name: "extra claims ignored", claims: with(v2Claims, func(c map[string]any) { c["roles"] = []string{"x"}; c["xms_cc"] = []string{"cp1"} })},
		{name: "expired", claims: with(v2Claims, func(c map[string]any) { c["exp"] = now.Add(-2 * time.Minute).Unix() }), wantErr: "token expired"},
		{name: "expired within skew", claims: with(v2Claims, func(c map[string]any) { c["exp"] = now.Add(-59 * time.Second).Unix() })},
		{name: "expired just beyond skew", claims: with(v2Claims, func(c map[string]any) { c["exp"] = now.Add(-61 * time.Second).Unix() }), wantErr: "token expired"},
		{name: "no exp", claims: with(v2Claims, func(c map[string]any) { delete(c, "exp") }), wantErr: "token has no exp"},
		{name: "nbf in future", claims: with(v2Claims, func(c map[string]any) { c["nbf"] = now.Add(2 * time.Minute).Unix() }), wantErr: "token is not valid yet"},
		{name: "nbf within skew", claims: with(v2Claims, func(c map[string]any) { c["nbf"] = now.Add(59 * time.Second).Unix() })},
		{name: "nbf just beyond skew", claims: with(v2Claims, func(c map[string]any) { c["nbf"] = now.Add(61 * time.Second).Unix() }), wantErr: "token is not valid yet"},
		{name: "wrong aud", claims: with(v2Claims, func(c map[string]any) { c["aud"] = "00000003-0000-0000-c000-000000000000" }),
			wantErr: `audience "00000003-0000-0000-c000-000000000000" is not accepted`},
		{name: "wrong aud array", claims: with(v2Claims, func(c map[string]any) { c["aud"] = []string{"a", "b"} }), wantErr: `audiences "a", ... are not accepted`},
		{name: "empty aud array", claims: with(v2Claims, func(c map[string]any) { c["aud"] = []string{} }), wantErr: "token has no audience"},
		{name: "no aud", claims: with(v2Claims, func(c map[string]any) { delete(c, "aud") }), wantErr: "token has no audience"},
		{name: "wrong issuer", claims: with(v2Claims, func(c map[string]any) { c["iss"] = "https://evil.example/" + testTID + "/v2.0" }),
			wantErr: `issuer "https://evil.example/` + testTID + `/v2.0" is not this tenant's`},
		{name: "no issuer", claims: with(v2Claims, func(c map[string]any) { delete(c, "iss") }), wantErr: `issuer "" is not this tenant's`},
		{name: "other tenant", claims: with(v2Claims, func(c map[string]any) {
			c["tid"] = "9188040d-6c67-4c5b-b112-36a304b66dad"
			c["iss"] = "https://login.microsoftonline.com/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0"
		}), wantErr: `token is from tenant "9188040d-6c67-4c5b-b112-36a304b66dad", not this tenant`},
		{name: "missing tid", claims: with(v2Claims, func(c map[string]any) { delete(c, "tid") }), wantErr: "token has no tid"},
		{name: "missing oid", claims: with(v2Claims, func(c map[string]any) { delete(c, "oid") }), wantErr: "token has no oid"},
		{name: "app-only token (roles, no scp)", claims: with(v2Claims, func(c map[string]any) {
			delete(c, "scp")
			c["roles"] = []string{"Files.Read.All"}
			c["idtyp"] = "app"
		}), wantErr: "not a delegated user token"},
		{name: "blank scp", claims: with(v2Claims, func(c map[string]any) { c["scp"] = "  " }), wantErr: "not a delegated user token"},
		{name: "scp not a string", claims: with(v2Claims, func(c map[string]any) { c["scp"] = []string{"a"} }), wantErr: "malformed token claims"},
		{name: "unknown ver", claims: with(v2Claims, func(c map[string]any) { c["ver"] = "3.0" }), wantErr: `token version "3.0" is not supported`},
		{name: "hostile value is sanitized", claims: with(v2Claims, func(c map[string]any) { c["aud"] = "a\"b\\c\r\nd\u00e9" + strings.Repeat("x", 100) }),
			wantErr: `audience "a?b?c??d?` + strings.Repeat("x", 71) + `..." is not accepted`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := v.Validate(context.Background(), ti.mint(t, tt.claims), nil)
			checkResult(t, id, err, tt.wantErr)
			if err == nil && tt.check != nil {
				tt.check(t, id)
			}
		})
	}
}

func identityEqual(a, b Identity) bool {
	return a.TenantID == b.TenantID && a.UserKey == b.ObjectID+"."+b.TenantID && a.ObjectID == b.ObjectID && a.Username == b.Username && a.Name == b.Name &&
		slices.Equal(a.Scopes, b.Scopes) && a.ClientID == b.ClientID && a.ExpiresAt.Equal(b.ExpiresAt)
}

// checkResult asserts a valid result, or an *InvalidTokenError with exactly wantErr as Description.
func checkResult(t *testing.T, id *Identity, err error, wantErr string) {
	t.Helper()
	if wantErr == "" {
		if err != nil {
			t.Fatalf("Validate: %v, want valid", err)
		}
		if id == nil {
			t.Fatal("Validate returned nil identity and nil error")
		}
		return
	}
	var inv *InvalidTokenError
	if !errors.As(err, &inv) {
		t.Fatalf("Validate error = %v (%T), want InvalidTokenError %q", err, err, wantErr)
	}
	if errors.Is(err, ErrKeysUnavailable) {
		t.Errorf("InvalidTokenError must not be ErrKeysUnavailable")
	}
	if inv.Description != wantErr {
		t.Errorf("Description = %q, want %q", inv.Description, wantErr)
	}
	if id != nil {
		t.Errorf("identity returned with an error")
	}
}

func TestValidateSignatureAndShape(t *testing.T) {
	ti, clock, v := newWarmValidator(t)
	now := clock.Now()
	rsaKey := testRSAKey(t, 0)
	valid := ti.mint(t, v2Claims(now))
	parts := strings.Split(valid, ".")

	pubDER, err := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	b64 := base64.RawURLEncoding.EncodeToString
	tampered := v2Claims(now)
	tampered["oid"] = "someone-else"
	tamperedPayload, err := json.Marshal(tampered)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		raw     string
		wantErr string
	}{
		{"valid", valid, ""},
		{"extra header fields (nonce, x5t) are fine", sign(t, jose.RS256, rsaKey, "key-1", v2Claims(now),
			map[string]any{"nonce": "abc", "x5t": "key-1", "foo": 1}), ""},
		{"alg none", b64([]byte(`{"alg":"none","kid":"key-1","typ":"JWT"}`)) + "." + parts[1] + ".", "alg none is not allowed"},
		{"alg none without kid", b64([]byte(`{"alg":"none"}`)) + "." + parts[1] + ".", "alg none is not allowed"},
		{"no alg", b64([]byte(`{"kid":"key-1"}`)) + "." + parts[1] + "." + parts[2], "malformed token"},
		{"HS256 keyed with the public key PEM", sign(t, jose.HS256, pubPEM, "key-1", v2Claims(now), nil), "alg HS256 is not allowed"},
		{"HS256 keyed with the public key DER", sign(t, jose.HS256, pubDER, "key-1", v2Claims(now), nil), "alg HS256 is not allowed"},
		{"ES256", sign(t, jose.ES256, ecKey, "key-1", v2Claims(now), nil), "alg ES256 is not allowed"},
		{"PS256 with the right key", sign(t, jose.PS256, rsaKey, "key-1", v2Claims(now), nil), "alg PS256 is not allowed"},
		{"RS512 with the right key", sign(t, jose.RS512, rsaKey, "key-1", v2Claims(now), nil), "alg RS512 is not allowed"},
		{"tampered payload", parts[0] + "." + b64(tamperedPayload) + "." + parts[2], "invalid signature"},
		{"signature of another token", parts[0] + "." + parts[1] + "." + strings.Split(ti.mint(t, v1Claims(now)), ".")[2], "invalid signature"},
		{"truncated signature", parts[0] + "." + parts[1] + "." + parts[2][:40], "invalid signature"},
		{"empty signature", parts[0] + "." + parts[1] + ".", "invalid signature"},
		{"signed by a stranger with our kid", sign(t, jose.RS256, testRSAKey(t, 1), "key-1", v2Claims(now), nil), "invalid signature"},
		{"unknown kid", sign(t, jose.RS256, testRSAKey(t, 1), "key-unknown", v2Claims(now), nil), "unknown signing key"},
		{"no kid", sign(t, jose.RS256, rsaKey, "", v2Claims(now), nil), "token has no kid"},
		{"payload not JSON", parts[0] + "." + b64([]byte("hello")) + "." + parts[2], "invalid signature"},
		{"empty", "", "empty token"},
		{"garbage", "not a token", "malformed token"},
		{"three dots", "...", "malformed token"},
		{"two dots", "..", "malformed token"},
		{"four parts", valid + ".x", "malformed token"},
		{"JWE shape", "a.b.c.d.e", "malformed token"},
		{"bad base64 header", "!!!." + parts[1] + "." + parts[2], "malformed token"},
		{"header not JSON", b64([]byte("nope")) + "." + parts[1] + "." + parts[2], "malformed token"},
		{"JSON serialization", `{"payload":"` + parts[1] + `","protected":"` + parts[0] + `","signature":"` + parts[2] + `"}`, "malformed token"},
		{"leading space", " " + valid, "malformed token"},
		{"Bearer prefix left on", "Bearer " + valid, "malformed token"},
		{"too large", strings.Repeat("a", maxTokenBytes+1), "token is too large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := v.Validate(context.Background(), tt.raw, nil)
			checkResult(t, id, err, tt.wantErr)
			if err != nil && len(tt.raw) > 20 {
				for _, p := range strings.Split(tt.raw, ".") {
					if len(p) > 20 && strings.Contains(err.Error(), p) {
						t.Errorf("error echoes token text: %v", err)
					}
				}
			}
		})
	}
}

func TestNewConfigErrors(t *testing.T) {
	ok := Config{AuthorityHost: "https://login.microsoftonline.com", Tenant: testTID, Audiences: []string{testClientID},
		HTTPClient: &http.Client{}}
	tests := []struct {
		name string
		mod  func(c *Config)
		ok   bool
	}{
		{"ok", func(c *Config) {}, true},
		{"ok trailing slash", func(c *Config) { c.AuthorityHost += "/" }, true},
		{"ok domain tenant", func(c *Config) { c.Tenant = testDomain }, true},
		{"loopback http", func(c *Config) { c.AuthorityHost = "http://127.0.0.1:8080" }, false},
		{"no client", func(c *Config) { c.HTTPClient = nil }, false},
		{"no authority", func(c *Config) { c.AuthorityHost = "" }, false},
		{"http authority", func(c *Config) { c.AuthorityHost = "http://login.microsoftonline.com" }, false},
		{"relative authority", func(c *Config) { c.AuthorityHost = "login.microsoftonline.com" }, false},
		{"authority with query", func(c *Config) { c.AuthorityHost += "?x=1" }, false},
		{"no tenant", func(c *Config) { c.Tenant = "" }, false},
		{"common tenant", func(c *Config) { c.Tenant = "common" }, false},
		{"organizations tenant", func(c *Config) { c.Tenant = "Organizations" }, false},
		{"tenant with slash", func(c *Config) { c.Tenant = "a/b" }, false},
		{"no audiences", func(c *Config) { c.Audiences = nil }, false},
		{"blank audience", func(c *Config) { c.Audiences = []string{" "} }, false},
		{"negative skew", func(c *Config) { c.ClockSkew = -time.Second }, false},
		{"negative cache", func(c *Config) { c.MaxCachedTokens = -1 }, false},
		{"negative timeout", func(c *Config) { c.FetchTimeout = -1 }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := ok
			cfg.Audiences = slices.Clone(ok.Audiences)
			tt.mod(&cfg)
			v, err := New(cfg)
			if (err == nil) != tt.ok {
				t.Fatalf("New error = %v, want ok=%v", err, tt.ok)
			}
			if err == nil && (v.rules.Load().skew != defaultClockSkew || v.cache.Cost() != 0 || v.limits != [2]int64{0, DefaultMaxCachedBytes} ||
				v.keys.fetcher.Load().timeout != defaultFetchTimeout) {
				t.Errorf("defaults not applied: skew %v, cache %d, timeout %v", v.rules.Load().skew, v.limits, v.keys.fetcher.Load().timeout)
			}
		})
	}
}

func TestCallerRules(t *testing.T) {
	ti := newTestIssuer(t)
	clock := newClock()
	tests := []struct {
		name         string
		scopes, apps []string
		claims       func(map[string]any)
		wantScope    bool // a ForbiddenError for the scope; wantApp for the app
		wantApp      bool
	}{
		{name: "no rules"},
		{name: "required scope carried", scopes: []string{"other", "access_as_user"}},
		{name: "required scope missing", scopes: []string{"admin"}, wantScope: true},
		{name: "allowed app", apps: []string{"11111111-AAAA-bbbb-cccc-222222222222"}},
		{name: "app not allowed", apps: []string{"99999999-aaaa-bbbb-cccc-222222222222"}, wantApp: true},
		{name: "v1 appid checked", apps: []string{"11111111-aaaa-bbbb-cccc-222222222222"}, wantApp: true,
			claims: func(c map[string]any) {
				c["ver"], c["iss"], c["appid"] = "1.0", testV1Issuer, "ea5a67f6-b6f3-4338-b240-c655ddc3cc8e"
				delete(c, "azp")
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := newTestValidator(t, ti, clock)
			claims := v2Claims(clock.Now())
			if tt.claims != nil {
				tt.claims(claims)
			}
			raw := ti.mint(t, claims)
			rules := &Rules{Scopes: tt.scopes, Apps: tt.apps}
			// A proven token, from the cache the second and third time, meets the same rules; a route that takes
			// any caller, asked in between, changes nothing.
			for i := range 3 {
				if i == 1 {
					if _, err := v.Validate(context.Background(), raw, nil); err != nil {
						t.Fatalf("a route without rules: %v", err)
					}
				}
				id, err := v.Validate(context.Background(), raw, rules)
				if err == nil && id == nil {
					t.Fatal("no identity")
				}
				var f *ForbiddenError
				switch {
				case !tt.wantScope && !tt.wantApp && err != nil:
					t.Fatalf("refused: %v", err)
				case (tt.wantScope || tt.wantApp) && (!errors.As(err, &f) || f.MissingScope != tt.wantScope):
					t.Fatalf("got %v, want a ForbiddenError (scope %v)", err, tt.wantScope)
				}
			}
		})
	}
}

func TestAuthContext(t *testing.T) {
	tests := []struct {
		name   string
		claims map[string]any
		want   string
	}{
		{"plain", map[string]any{"amr": []string{"pwd"}}, ""},
		{"mfa", map[string]any{"amr": []string{"pwd", "mfa"}}, "mfa"},
		{"auth contexts in any order", map[string]any{"acrs": []string{"c2", "c1", "c2"}}, "acrs=c1,c2"},
		{"device", map[string]any{"deviceid": "d1"}, "device=d1"},
		{"all", map[string]any{"amr": []string{"mfa"}, "acrs": []string{"c1"}, "deviceid": "d1"}, "mfa;acrs=c1;device=d1"},
	}
	ti := newTestIssuer(t)
	clock := newClock()
	v := newTestValidator(t, ti, clock)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := v2Claims(clock.Now())
			maps.Copy(c, tt.claims)
			id, err := v.Validate(context.Background(), ti.mint(t, c), nil)
			if err != nil || id.AuthContext != tt.want {
				t.Fatalf("AuthContext = %q (%v), want %q", id.AuthContext, err, tt.want)
			}
		})
	}
}
