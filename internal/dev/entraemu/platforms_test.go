package entraemu_test

import (
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"testing"

	. "github.com/tokeninjector/caddy-token-injector/internal/dev/entraemu"
)

// The app-registration rules browsers meet: spa and web redirect URIs, public and confidential clients, and the
// localhost exceptions.

const spaOrigin = "http://localhost:5173"

// spaAuthorize signs user in for clientID at redirect (PKCE S256 unless verifier is empty) and returns the code.
func spaAuthorize(t *testing.T, b *browser, clientID, redirect, scope, verifier, user string) string {
	t.Helper()
	p := url.Values{"client_id": {clientID}, "response_type": {"code"}, "redirect_uri": {redirect},
		"scope": {scope}, "state": {"s"}, "nonce": {"n"}, "response_mode": {"fragment"}}
	if verifier != "" {
		sum := sha256.Sum256([]byte(verifier))
		p.Set("code_challenge", base64.RawURLEncoding.EncodeToString(sum[:]))
		p.Set("code_challenge_method", "S256")
	}
	path := "/" + DefaultTenantID + "/oauth2/v2.0/authorize?" + p.Encode()
	resp, page := b.do(http.MethodPost, path, url.Values{"user": {user}})
	if resp.StatusCode == http.StatusOK && strings.Contains(page, `data-entraemu-step="`) {
		resp, _ = b.do(http.MethodPost, path, url.Values{"user": {user}, "mfa": {"approved"}, "consent": {"accepted"}})
	}
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(loc, redirect+"#") {
		t.Fatalf("want a redirect to %s#..., got %d %q", redirect, resp.StatusCode, loc)
	}
	frag, _ := url.ParseQuery(loc[strings.Index(loc, "#")+1:])
	if frag.Get("code") == "" {
		t.Fatalf("no code: %v", frag)
	}
	return frag.Get("code")
}

func spaScope() string {
	return DefaultAddinIdentifierURI + "/access_as_user openid profile offline_access"
}

func redeemForm(clientID, code, redirect, verifier string) url.Values {
	return url.Values{"grant_type": {"authorization_code"}, "client_id": {clientID}, "code": {code},
		"redirect_uri": {redirect}, "code_verifier": {verifier}, "scope": {spaScope()}}
}

func TestSPACodeRedeemedCrossOriginWithoutSecret(t *testing.T) {
	e, _ := newTestEmulator(t)
	b := newBrowser(t, e)
	redirect := spaOrigin + "/redirect.html" // registered as http://localhost/redirect.html: the port is ignored
	verifier := NewOpaque(32)
	code := spaAuthorize(t, b, DefaultSPAClientID, redirect, spaScope(), verifier, "adele")
	res := postForm(e, v2Token, redeemForm(DefaultSPAClientID, code, redirect, verifier), "Origin", spaOrigin)
	if res.status != 200 || str(res.body["access_token"]) == "" || str(res.body["refresh_token"]) == "" {
		t.Fatalf("spa redemption: %d %s", res.status, res.raw)
	}
	if got := res.header.Get("Access-Control-Allow-Origin"); got != spaOrigin {
		t.Errorf("Access-Control-Allow-Origin = %q, want %q", got, spaOrigin)
	}
	_, c := decodeJWT(t, str(res.body["access_token"]))
	if c["aud"] != DefaultAddinIdentifierURI || c["azp"] != DefaultSPAClientID && c["appid"] != DefaultSPAClientID {
		t.Errorf("claims = %v, want the add-in API's audience for the spa client", c)
	}
	rt := str(res.body["refresh_token"])
	refresh := url.Values{"grant_type": {"refresh_token"}, "client_id": {DefaultSPAClientID}, "refresh_token": {rt},
		"scope": {spaScope()}}
	// A spa refresh token is redeemed cross-origin only, as its code was.
	checkError(t, postForm(e, v2Token, refresh), 400, "invalid_request", 9002327, "")
	res = postForm(e, v2Token, refresh, "Origin", spaOrigin)
	if res.status != 200 {
		t.Fatalf("spa refresh: %d %s", res.status, res.raw)
	}
}

func TestRedemptionRulesPerPlatform(t *testing.T) {
	confidentialSPA := func(c *Config) { // the add-in API with a spa redirect URI too
		for i := range c.Apps {
			if c.Apps[i].ClientID == DefaultAddinClientID {
				c.Apps[i].SPARedirectURIs = []string{"https://app.example/spa"}
			}
		}
	}
	e, _ := newTestEmulator(t, confidentialSPA)
	b := newBrowser(t, e)
	cases := []struct {
		name                       string
		client, redirect, verifier string
		secret, origin             bool
		wantStatus, wantCode       int
		wantErr                    string
		redirectScope              string
	}{
		{name: "spa code from a server (no Origin)", client: DefaultSPAClientID, redirect: spaOrigin + "/redirect.html",
			verifier: "v1", wantStatus: 400, wantCode: 9002327, wantErr: "invalid_request"},
		{name: "spa code without PKCE", client: DefaultSPAClientID, redirect: spaOrigin + "/redirect.html",
			origin: true, wantStatus: 400, wantCode: 9002325, wantErr: "invalid_request"},
		{name: "web code redeemed cross-origin", client: DefaultAddinClientID, redirect: testRedirect,
			verifier: "v3", secret: true, origin: true, wantStatus: 400, wantCode: 9002326, wantErr: "invalid_request"},
		{name: "confidential client's web code without its secret", client: DefaultAddinClientID, redirect: testRedirect,
			verifier: "v4", wantStatus: 401, wantCode: 7000218, wantErr: "invalid_client"},
		{name: "confidential client's web code with its secret", client: DefaultAddinClientID, redirect: testRedirect,
			verifier: "v5", secret: true, wantStatus: 200},
		{name: "confidential client's spa code, cross-origin, no secret", client: DefaultAddinClientID,
			redirect: "https://app.example/spa", verifier: "v6", origin: true, wantStatus: 200},
		{name: "public client sending a secret", client: DefaultSPAClientID, redirect: spaOrigin + "/redirect.html",
			verifier: "v7", secret: true, origin: true, wantStatus: 401, wantCode: 700025, wantErr: "invalid_client"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code := spaAuthorize(t, b, tc.client, tc.redirect, spaScope(), tc.verifier, "lee")
			form := redeemForm(tc.client, code, tc.redirect, tc.verifier)
			if tc.secret {
				form.Set("client_secret", DefaultAddinSecret)
			}
			var hdr []string
			if tc.origin {
				hdr = []string{"Origin", "https://app.example"}
			}
			res := postForm(e, v2Token, form, hdr...)
			if tc.wantStatus == 200 {
				if res.status != 200 || str(res.body["access_token"]) == "" {
					t.Fatalf("want a token, got %d %s", res.status, res.raw)
				}
				return
			}
			checkError(t, res, tc.wantStatus, tc.wantErr, tc.wantCode, "")
		})
	}
	// Client credentials from a browser script: a confidential flow, refused cross-origin.
	cc := url.Values{"grant_type": {"client_credentials"}, "client_id": {DefaultAddinClientID},
		"client_secret": {DefaultAddinSecret}, "scope": {GraphURI + "/.default"}}
	checkError(t, postForm(e, v2Token, cc, "Origin", "https://app.example"), 400, "invalid_request", 9002326, "")
}

func TestLoopbackRedirectURIsMatchAnyPort(t *testing.T) {
	withURIs := func(c *Config) {
		for i := range c.Apps {
			if c.Apps[i].ClientID == DefaultAddinClientID {
				c.Apps[i].RedirectURIs = []string{"http://localhost/web", "https://127.0.0.1/web", "https://app.example:8443/cb", "http://[::1]/v6"}
				c.Apps[i].SPARedirectURIs = []string{"http://localhost:3000/spa"}
			}
		}
	}
	e, _ := newTestEmulator(t, withURIs)
	cases := []struct {
		redirect string
		ok       bool
	}{
		{"http://localhost/web", true},
		{"http://localhost:5000/web", true},
		{"http://localhost:8080/web", true},
		{"https://127.0.0.1:44321/web", true},
		{"http://localhost:9999/spa", true}, // the spa platform ignores the port too
		{"http://localhost/spa", true},
		{"http://localhost:5000/Web", false},     // paths are case-sensitive
		{"https://localhost:5000/web", false},    // the scheme must match
		{"http://127.0.0.1:5000/web", false},     // so must the host: localhost is not 127.0.0.1
		{"https://app.example:9443/cb", false},   // only loopback hosts are exempt
		{"http://[::1]:5000/v6", false},          // Entra does not support the IPv6 loopback
		{"http://localhost:5000/web?x=1", false}, // nor a different query
		{"http://localhost.evil.example/web", false},
	}
	for _, tc := range cases {
		p := url.Values{"client_id": {DefaultAddinClientID}, "response_type": {"code"}, "redirect_uri": {tc.redirect},
			"scope": {"openid"}}
		res := get(e, "/"+DefaultTenantID+"/oauth2/v2.0/authorize?"+p.Encode())
		matched := res.status == 200 && strings.Contains(res.raw, `name="user"`)
		if matched != tc.ok {
			t.Errorf("%s: matched = %v, want %v (%d %.200s)", tc.redirect, matched, tc.ok, res.status, res.raw)
		}
		if !tc.ok && !strings.Contains(res.raw, "AADSTS50011") {
			t.Errorf("%s: want AADSTS50011 on the error page, got %.200s", tc.redirect, res.raw)
		}
	}
	// The code goes to the port the client asked for, and only that URI redeems it.
	b := newBrowser(t, e)
	code := spaAuthorize(t, b, DefaultAddinClientID, "http://localhost:5000/web", "openid offline_access", "v", "adele")
	form := url.Values{"grant_type": {"authorization_code"}, "client_id": {DefaultAddinClientID},
		"client_secret": {DefaultAddinSecret}, "code": {code}, "redirect_uri": {"http://localhost:6000/web"}, "code_verifier": {"v"}}
	checkError(t, postForm(e, v2Token, form), 400, "invalid_grant", 500112, "")
}
