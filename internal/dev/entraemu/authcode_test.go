package entraemu_test

import (
	"crypto/sha256"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	. "github.com/tokeninjector/caddy-token-injector/internal/dev/entraemu"
	"github.com/tokeninjector/caddy-token-injector/internal/dev/testenv"
)

const testRedirect = "http://localhost/callback"

// browser is testenv's browser on an in-process emulator, following no redirect: each step is the test's.
type browser struct {
	t   *testing.T
	srv *httptest.Server
	c   *http.Client
}

func newBrowser(t *testing.T, e *Emulator) *browser {
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	b := testenv.NewBrowser(testenv.BrowserOptions{StopAt: func(*http.Request) bool { return true }})
	b.Client.Timeout = 10 * time.Second
	return &browser{t: t, srv: srv, c: b.Client}
}

func (b *browser) do(method, path string, form url.Values) (*http.Response, string) {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, b.srv.URL+path, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp, string(raw)
}

// authorizePath builds an authorize request for the add-in with PKCE S256.
func authorizePath(verifier string, extra url.Values) string {
	sum := sha256.Sum256([]byte(verifier))
	p := url.Values{
		"client_id": {DefaultAddinClientID}, "response_type": {"code"}, "redirect_uri": {testRedirect},
		"scope": {"https://graph.microsoft.com/User.Read openid profile offline_access"}, "state": {"xyz"},
		"nonce": {"nonce-1"}, "code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])},
		"code_challenge_method": {"S256"}, "client_info": {"1"},
	}
	for k, v := range extra {
		p[k] = v
	}
	return "/" + DefaultTenantID + "/oauth2/v2.0/authorize?" + p.Encode()
}

// pickUser completes the picker for user and returns the redirect's query.
// pickUser picks user and, when the emulator shows its MFA or consent step, approves and accepts.
func (b *browser) pickUser(path, user string) url.Values {
	b.t.Helper()
	resp, page := b.do(http.MethodPost, path, url.Values{"user": {user}})
	if resp.StatusCode == http.StatusOK && strings.Contains(page, `data-entraemu-step="`) {
		resp, _ = b.do(http.MethodPost, path, url.Values{"user": {user}, "mfa": {"approved"}, "consent": {"accepted"}})
	}
	return redirectQuery(b.t, resp)
}

func redirectQuery(t *testing.T, resp *http.Response) url.Values {
	t.Helper()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || err != nil || !strings.HasPrefix(loc.String(), testRedirect) {
		t.Fatalf("want redirect to %s, got %d %q", testRedirect, resp.StatusCode, resp.Header.Get("Location"))
	}
	return loc.Query()
}

func codeForm(code, verifier string) url.Values {
	return url.Values{"grant_type": {"authorization_code"}, "client_id": {DefaultAddinClientID},
		"client_secret": {DefaultAddinSecret}, "code": {code}, "redirect_uri": {testRedirect},
		"code_verifier": {verifier}, "scope": {"https://graph.microsoft.com/User.Read openid profile offline_access"}}
}

func TestAuthCodeFlow(t *testing.T) {
	e, _ := newTestEmulator(t)
	b := newBrowser(t, e)
	verifier := NewOpaque(32)
	path := authorizePath(verifier, url.Values{"login_hint": {"MeganB@contoso.onmicrosoft.com"}})

	resp, page := b.do(http.MethodGet, path, nil)
	if resp.StatusCode != 200 || strings.Count(page, `name="user"`) != e.UserCount() {
		t.Fatalf("picker: %d, %d user forms", resp.StatusCode, strings.Count(page, `name="user"`))
	}
	if !strings.Contains(page, `class="hint" autofocus>Megan Bowen`) {
		t.Error("login_hint did not preselect Megan")
	}
	q := b.pickUser(path, "adele")
	if q.Get("state") != "xyz" || q.Get("session_state") == "" || q.Get("client_info") == "" {
		t.Fatalf("redirect query %v", q)
	}
	res := postForm(e, v2Token, codeForm(q.Get("code"), verifier))
	if res.status != 200 {
		t.Fatalf("redeem: %d %s", res.status, res.raw)
	}
	for _, k := range []string{"access_token", "refresh_token", "id_token"} {
		if str(res.body[k]) == "" {
			t.Errorf("%s missing", k)
		}
	}
	_, id := decodeJWT(t, str(res.body["id_token"]))
	if id["nonce"] != "nonce-1" || id["sid"] != q.Get("session_state") || id["aud"] != DefaultAddinClientID {
		t.Errorf("id_token = %v", id)
	}
	checkError(t, postForm(e, v2Token, codeForm(q.Get("code"), verifier)), 400, "invalid_grant", 54005, "")

	// The session cookie now signs adele in silently, with prompt=none too.
	for _, extra := range []url.Values{nil, {"prompt": {"none"}}} {
		resp, _ = b.do(http.MethodGet, authorizePath(verifier, extra), nil)
		if q := redirectQuery(t, resp); q.Get("code") == "" {
			t.Errorf("silent sign-in (%v) gave %v", extra, q)
		}
	}
	// prompt=login shows the picker again.
	if resp, _ = b.do(http.MethodGet, authorizePath(verifier, url.Values{"prompt": {"login"}}), nil); resp.StatusCode != 200 {
		t.Errorf("prompt=login: %d", resp.StatusCode)
	}
	// Logout ends the session: prompt=none now needs a login.
	resp, _ = b.do(http.MethodGet, "/"+DefaultTenantID+"/oauth2/v2.0/logout?post_logout_redirect_uri="+url.QueryEscape(testRedirect)+"&state=bye", nil)
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != testRedirect+"?state=bye" {
		t.Errorf("logout redirect: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, _ = b.do(http.MethodGet, authorizePath(verifier, url.Values{"prompt": {"none"}}), nil)
	q = redirectQuery(t, resp)
	if q.Get("error") != "login_required" || !strings.HasPrefix(q.Get("error_description"), "AADSTS50058: ") || q.Get("state") != "xyz" {
		t.Errorf("prompt=none after logout: %v", q)
	}
	if n := e.Counters().Authorize; n < 6 {
		t.Errorf("Authorize counter = %d", n)
	}
}

func TestAuthCodeRedemptionErrors(t *testing.T) {
	e, clk := newTestEmulator(t, func(c *Config) {
		c.Apps = append(c.Apps, App{ClientID: "33333333-4444-4555-8666-777777777777", Secret: "x", Name: "x", RedirectURIs: []string{testRedirect}})
	})
	b := newBrowser(t, e)
	verifier := NewOpaque(32)
	code := func() string { return b.pickUser(authorizePath(verifier, nil), "alex").Get("code") }
	cases := []struct {
		name string
		form func() url.Values
		code int
		err  string
	}{
		{"wrong verifier", func() url.Values { return codeForm(code(), "wrong-verifier-wrong-verifier-wrong-verifier") }, 501481, "invalid_grant"},
		{"missing verifier", func() url.Values { f := codeForm(code(), ""); f.Del("code_verifier"); return f }, 501481, "invalid_grant"},
		{"other redirect URI", func() url.Values {
			f := codeForm(code(), verifier)
			f.Set("redirect_uri", "https://localhost:3000/auth/callback")
			return f
		}, 500112, "invalid_grant"},
		{"missing redirect URI", func() url.Values { f := codeForm(code(), verifier); f.Del("redirect_uri"); return f }, 900144, "invalid_request"},
		{"expired", func() url.Values {
			c := code()
			clk.Advance(10*time.Minute + time.Second)
			return codeForm(c, verifier)
		}, 70008, "invalid_grant"},
		{"garbage", func() url.Values { return codeForm("1.Anope", verifier) }, 9002313, "invalid_grant"},
		{"other client", func() url.Values {
			f := codeForm(code(), verifier)
			f.Set("client_id", "33333333-4444-4555-8666-777777777777")
			f.Set("client_secret", "x")
			return f
		}, 9002313, "invalid_grant"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			checkError(t, postForm(e, v2Token, tc.form()), 400, tc.err, tc.code, "")
		})
	}
	t.Run("plain PKCE", func(t *testing.T) {
		q := b.pickUser(authorizePath("", url.Values{"code_challenge": {"plain-verifier-0123456789-0123456789-0123"}, "code_challenge_method": {"plain"}}), "alex")
		if res := postForm(e, v2Token, codeForm(q.Get("code"), "plain-verifier-0123456789-0123456789-0123")); res.status != 200 {
			t.Errorf("%d %s", res.status, res.raw)
		}
	})
}

func TestAuthorizeValidation(t *testing.T) {
	e, _ := newTestEmulator(t)
	b := newBrowser(t, e)
	pages := []struct {
		name  string
		extra url.Values
		code  string
	}{
		{"unregistered redirect", url.Values{"redirect_uri": {"https://evil.example/cb"}}, "AADSTS50011"},
		{"unknown client", url.Values{"client_id": {"44444444-4444-4444-8444-444444444444"}}, "AADSTS700016"},
		{"bad response_mode", url.Values{"response_mode": {"web_message"}}, "AADSTS70007"},
	}
	for _, tc := range pages {
		t.Run(tc.name, func(t *testing.T) {
			resp, page := b.do(http.MethodGet, authorizePath("v", tc.extra), nil)
			if resp.StatusCode < 400 || resp.Header.Get("Location") != "" || !strings.Contains(page, tc.code) {
				t.Errorf("%d %q: %.200s", resp.StatusCode, resp.Header.Get("Location"), page)
			}
		})
	}
	redirects := []struct {
		name  string
		extra url.Values
		err   string
	}{
		{"implicit flow", url.Values{"response_type": {"token"}}, "unsupported_response_type"},
		{"bad PKCE method", url.Values{"code_challenge_method": {"S512"}}, "invalid_request"},
		{"missing scope", url.Values{"scope": {""}}, "invalid_request"},
		{"unknown scope", url.Values{"scope": {"https://graph.microsoft.com/Nope openid"}}, "invalid_scope"},
	}
	for _, tc := range redirects {
		t.Run(tc.name, func(t *testing.T) {
			resp, _ := b.do(http.MethodGet, authorizePath("v", tc.extra), nil)
			if q := redirectQuery(t, resp); q.Get("error") != tc.err || q.Get("state") != "xyz" || !strings.HasPrefix(q.Get("error_description"), "AADSTS") {
				t.Errorf("query %v", q)
			}
		})
	}
	t.Run("logout refuses an open redirect", func(t *testing.T) {
		resp, page := b.do(http.MethodGet, "/"+DefaultTenantID+"/oauth2/v2.0/logout?post_logout_redirect_uri=https%3A%2F%2Fevil.example%2F", nil)
		if resp.StatusCode != 200 || !strings.Contains(page, "signed out") {
			t.Errorf("%d %q", resp.StatusCode, resp.Header.Get("Location"))
		}
	})
}

func TestAuthorizeResponseModes(t *testing.T) {
	e, _ := newTestEmulator(t)
	b := newBrowser(t, e)
	resp, _ := b.do(http.MethodPost, authorizePath("v", url.Values{"response_mode": {"fragment"}}), url.Values{"user": {"lynne"}})
	if loc := resp.Header.Get("Location"); !strings.HasPrefix(loc, testRedirect+"#code=") || !strings.Contains(loc, "state=xyz") {
		t.Errorf("fragment: %q", loc)
	}
	resp, page := b.do(http.MethodPost, authorizePath("v", url.Values{"response_mode": {"form_post"}}), url.Values{"user": {"lynne"}})
	if resp.StatusCode != 200 || !strings.Contains(page, `action="`+testRedirect+`"`) || !strings.Contains(page, `name="code"`) || !strings.Contains(page, `value="xyz"`) {
		t.Errorf("form_post: %d %.300s", resp.StatusCode, page)
	}
}

func TestPickerClearsInteractionFaultsAndDoesMFA(t *testing.T) {
	e, _ := newTestEmulator(t)
	e.SetFault("nestor", Fault{Kind: FaultMFARequired})
	b := newBrowser(t, e)
	verifier := NewOpaque(32)
	// prompt=none cannot satisfy MFA.
	b.pickUser(authorizePath(verifier, nil), "patti") // any session, different user
	resp, _ := b.do(http.MethodGet, authorizePath(verifier, url.Values{"prompt": {"none"}, "login_hint": {"nestor"}}), nil)
	if q := redirectQuery(t, resp); q.Get("error") != "login_required" {
		t.Errorf("hint for another user: %v", q)
	}
	q := b.pickUser(authorizePath(verifier, nil), "nestor")
	if _, ok := e.Faults()["nestor"]; ok {
		t.Error("interactive sign-in did not clear nestor's mfa_required fault")
	}
	res := postForm(e, v2Token, codeForm(q.Get("code"), verifier))
	if res.status != 200 {
		t.Fatalf("%d %s", res.status, res.raw)
	}
	_, c := decodeJWT(t, str(res.body["access_token"]))
	if amr, _ := c["amr"].([]any); !slices.Contains(amr, any("mfa")) {
		t.Errorf("amr = %v, want mfa after an MFA sign-in", c["amr"])
	}
	// A global MFA policy is satisfied by tokens from that sign-in, not by others.
	e.SetFault("", Fault{Kind: FaultMFARequired})
	if res := postForm(e, v2Token, refreshForm(str(res.body["refresh_token"]), "User.Read")); res.status != 200 {
		t.Errorf("refresh after MFA sign-in: %d %s", res.status, res.raw)
	}
	checkError(t, postForm(e, v2Token, oboForm(mustMint(t, e, "nestor", MintOptions{}), "User.Read")), 400, "invalid_grant", 50076, "basic_action")
}

func TestAuthorizeClaimsChallenge(t *testing.T) {
	e, _ := newTestEmulator(t)
	b := newBrowser(t, e)
	b.pickUser(authorizePath("v", nil), "miriam") // a session without MFA
	claims := url.Values{"claims": {`{"access_token":{"capolids":{"essential":true,"values":["p1"]}}}`}}
	silent := url.Values{"prompt": {"none"}, "claims": claims["claims"]}
	resp, _ := b.do(http.MethodGet, authorizePath("v", silent), nil)
	if q := redirectQuery(t, resp); q.Get("error") != "interaction_required" || !strings.HasPrefix(q.Get("error_description"), "AADSTS50076:") {
		t.Fatalf("claims challenge with prompt=none: %v", q)
	}
	// Interactively, the challenge is met: the session now has MFA and silent sign-in works.
	b.pickUser(authorizePath("v", claims), "miriam")
	resp, _ = b.do(http.MethodGet, authorizePath("v", silent), nil)
	if q := redirectQuery(t, resp); q.Get("code") == "" {
		t.Errorf("after MFA sign-in: %v", q)
	}
}
