package signin

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tokeninjector/caddy-token-injector/internal/contract"
	"github.com/tokeninjector/caddy-token-injector/internal/session"
)

func nilSession() session.Config { return session.Config{} }

// signedIn returns a browser with a session.
func signedIn(t *testing.T, e *env) *browser {
	t.Helper()
	b := newBrowser(t, e.h)
	if w := b.callback(e.login(t, b, ""), "code-"+randomString(8)); w.Code != http.StatusFound {
		t.Fatalf("sign-in = %d", w.Code)
	}
	return b
}

func TestLogoutCSRF(t *testing.T) {
	tests := []struct {
		name       string
		method     string
		headers    []string
		signOut    bool
		wantStatus int
	}{
		{"POST same-origin", "POST", []string{"Origin", "https://proxy.example"}, true, 302},
		{"POST same-origin, no Origin", "POST", []string{"Sec-Fetch-Site", "same-origin"}, true, 302},
		{"POST user-initiated", "POST", []string{"Sec-Fetch-Site", "none"}, true, 302},
		{"POST from allowed origin", "POST", []string{"Sec-Fetch-Site", "cross-site", "Origin", "https://app.example"}, true, 302},
		{"POST old browser, this origin", "POST", []string{"Sec-Fetch-Site", "", "Origin", "https://proxy.example"}, true, 302},
		{"POST cross-site", "POST", []string{"Sec-Fetch-Site", "cross-site", "Origin", "https://evil.example"}, false, 403},
		{"POST cross-site, null origin", "POST", []string{"Sec-Fetch-Site", "cross-site", "Origin", "null"}, false, 403},
		{"POST same-site sibling", "POST", []string{"Sec-Fetch-Site", "same-site", "Origin", "https://evil.proxy.example"}, false, 403},
		{"POST same-site, no Origin", "POST", []string{"Sec-Fetch-Site", "same-site"}, false, 403},
		{"POST same-origin claim, foreign Origin", "POST", []string{"Sec-Fetch-Site", "same-origin", "Origin", "https://evil.example"}, false, 403},
		{"POST old browser, foreign origin", "POST", []string{"Sec-Fetch-Site", "", "Origin", "https://evil.example"}, false, 403},
		{"POST old browser, no origin", "POST", []string{"Sec-Fetch-Site", ""}, false, 403},
		// A GET never ends the session: a page gets the confirmation form, a script 405.
		{"GET link on this site", "GET", []string{"Referer", "https://proxy.example/app"}, false, 200},
		{"GET typed", "GET", []string{"Sec-Fetch-Site", "none"}, false, 200},
		{"GET from allowed origin", "GET", []string{"Sec-Fetch-Site", "cross-site", "Referer", "https://app.example/page"}, false, 200},
		{"GET cross-site link", "GET", []string{"Sec-Fetch-Site", "cross-site", "Referer", "https://evil.example/"}, false, 200},
		{"GET cross-site, no referer", "GET", []string{"Sec-Fetch-Site", "cross-site"}, false, 200},
		{"GET old browser, foreign referer", "GET", []string{"Sec-Fetch-Site", "", "Referer", "https://evil.example/"}, false, 200},
		{"GET old browser, no headers", "GET", []string{"Sec-Fetch-Site", "", "Sec-Fetch-Mode", ""}, false, 200},
		{"GET cross-site image", "GET", []string{"Sec-Fetch-Site", "cross-site", "Sec-Fetch-Mode", "no-cors"}, false, 405},
		{"GET script wanting JSON", "GET", []string{"Sec-Fetch-Site", "cross-site", "Sec-Fetch-Mode", "cors",
			"Origin", "https://app.example", "Accept", "application/json"}, false, 405},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, Config{}, session.Config{})
			b := signedIn(t, e)
			var body *strings.Reader
			if tt.method == "POST" {
				body = strings.NewReader("return_to=%2Fbye")
			} else {
				body = strings.NewReader("")
			}
			target := "/.auth/logout"
			if tt.method == "GET" {
				target += "?return_to=%2Fbye"
			}
			r := b.request(tt.method, target, body, tt.headers...)
			if tt.method == "POST" {
				r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			}
			w := b.do(r)
			if w.Code != tt.wantStatus {
				t.Fatalf("logout = %d, want %d: %s", w.Code, tt.wantStatus, w.Body)
			}
			if tt.signOut {
				if w.Header().Get("Location") != "/bye" || b.hasSession(e.sessions) || len(e.idp.signOuts) != 1 ||
					e.idp.signOuts[0] != "oid-1.tid-1" {
					t.Fatalf("not signed out: %v, idp %v", w.Header(), e.idp.signOuts)
				}
				return
			}
			if !b.hasSession(e.sessions) || len(e.idp.signOuts) != 0 {
				t.Fatal("a refused logout signed the user out")
			}
			if w.Code == 200 && (!strings.Contains(w.Body.String(), `<form method="post" action="/.auth/logout">`) ||
				!strings.Contains(w.Body.String(), `name="return_to" value="/bye"`)) {
				t.Fatalf("no confirmation form: %s", w.Body)
			}
			if w.Code == 405 && w.Header().Get("Allow") != "POST" {
				t.Fatalf("405 with Allow %q", w.Header().Get("Allow"))
			}
		})
	}
}

func TestLogoutEndsEverySessionOfTheUser(t *testing.T) {
	e := newEnv(t, Config{}, session.Config{})
	laptop, phone := signedIn(t, e), signedIn(t, e)
	laptop.do(laptop.request(http.MethodPost, "/.auth/logout", nil))
	if laptop.hasSession(e.sessions) || phone.hasSession(e.sessions) {
		t.Fatal("the user's other session survived a logout that dropped the user's tokens")
	}
}

func TestLogoutEndSessionAndJSON(t *testing.T) {
	e := newEnv(t, Config{EndSession: true}, session.Config{})
	e.idp.endSession = "https://login.example/tid/oauth2/v2.0/logout"
	b := signedIn(t, e)
	w := b.do(b.request(http.MethodPost, "/.auth/logout", nil))
	if e.idp.lastEndArg != "https://proxy.example/" ||
		w.Header().Get("Location") != "https://login.example/tid/oauth2/v2.0/logout?post_logout_redirect_uri=https%3A%2F%2Fproxy.example%2F" {
		t.Fatalf("end session: %q (arg %q)", w.Header().Get("Location"), e.idp.lastEndArg)
	}
	// A script gets JSON, not a cross-origin redirect it could not follow.
	b = signedIn(t, e)
	w = b.do(b.request(http.MethodPost, "/.auth/logout", nil, "Sec-Fetch-Mode", "cors", "Origin", "https://app.example",
		"Sec-Fetch-Site", "cross-site", "Accept", "application/json"))
	var got map[string]any
	if w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &got) != nil || got["signed_out"] != true ||
		!strings.HasPrefix(got["redirect"].(string), "https://login.example/") ||
		w.Header().Get("Access-Control-Allow-Origin") != "https://app.example" {
		t.Fatalf("JSON logout = %d %s %v", w.Code, w.Body, w.Header())
	}
	// Without a known end-session endpoint, logout falls back to return_to.
	e.idp.endSession = ""
	b = signedIn(t, e)
	w = b.do(b.request(http.MethodPost, "/.auth/logout", strings.NewReader("return_to=%2Fhome"),
		"Content-Type", "application/x-www-form-urlencoded"))
	if w.Header().Get("Location") != "/home" {
		t.Fatalf("fallback = %q", w.Header().Get("Location"))
	}
	// Logout without a session still redirects, and calls no SignOut.
	n := len(e.idp.signOuts)
	anon := newBrowser(t, e.h)
	if w := anon.do(anon.request(http.MethodPost, "/.auth/logout", strings.NewReader("return_to=//evil.example"),
		"Content-Type", "application/x-www-form-urlencoded")); w.Code != 302 || w.Header().Get("Location") != "/" ||
		len(e.idp.signOuts) != n {
		t.Fatalf("anonymous logout = %d %q", w.Code, w.Header().Get("Location"))
	}
}

func TestMe(t *testing.T) {
	e := newEnv(t, Config{}, session.Config{})
	b := signedIn(t, e)
	w := b.get("/.auth/me", "Sec-Fetch-Mode", "cors", "Accept", "application/json")
	var u map[string]string
	if w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &u) != nil || u["user_key"] != "oid-1.tid-1" || u["oid"] != "oid-1" ||
		u["tid"] != "tid-1" || u["username"] != "ada@example.com" || u["name"] != "Ada <Lovelace>" {
		t.Fatalf("me = %d %s", w.Code, w.Body)
	}
	w = newBrowser(t, e.h).get("/.auth/me", "Sec-Fetch-Mode", "cors")
	var p contract.Problem
	if w.Code != 401 || json.Unmarshal(w.Body.Bytes(), &p) != nil || p.Reason != contract.ReasonLoginRequired ||
		!strings.HasPrefix(p.LoginURL, "/.auth/login?") || !strings.Contains(w.Header().Get("WWW-Authenticate"), "login_url=") {
		t.Fatalf("anonymous me = %d %s", w.Code, w.Body)
	}
}

func TestLoginURL(t *testing.T) {
	e := newEnv(t, Config{Scopes: []string{"api://x/read"}}, session.Config{})
	tests := []struct {
		target string
		scopes []string
		claims string
		want   url.Values
	}{
		{"/app/doc?id=7", nil, "", url.Values{"return_to": {"/app/doc?id=7"}}},
		{"/api/items", []string{"api://x/read", "openid", "api://x/write", "api://x/write"}, `{"access_token":{}}`,
			url.Values{"return_to": {"/api/items"}, "scope": {"api://x/read api://x/write"}, "claims": {`{"access_token":{}}`}}},
		{"/%5Cevil", nil, "", url.Values{"return_to": {"/"}}},
	}
	for _, tt := range tests {
		r := httptest.NewRequest(http.MethodGet, "https://proxy.example"+tt.target, nil)
		got := e.h.LoginURL(r, tt.scopes, tt.claims)
		path, query, _ := strings.Cut(got, "?")
		q, _ := url.ParseQuery(query)
		if path != "/.auth/login" || q.Encode() != tt.want.Encode() {
			t.Errorf("LoginURL(%s) = %s, want query %s", tt.target, got, tt.want.Encode())
		}
	}
}

func TestOwnsAndRouting(t *testing.T) {
	e := newEnv(t, Config{Path: "/_signin"}, session.Config{})
	for path, want := range map[string]bool{"/_signin": true, "/_signin/login": true, "/_signin/x/y": true,
		"/_signinx": false, "/": false, "/app/_signin/login": false, "/.auth/login": false} {
		if got := e.h.Owns(httptest.NewRequest(http.MethodGet, "https://proxy.example"+path, nil)); got != want {
			t.Errorf("Owns(%s) = %v", path, got)
		}
	}
	for path, want := range map[string]bool{"/_signin/callback": true, "/_signin/login": false, "/callback": false} {
		if got := e.h.URLCarriesSecret(httptest.NewRequest(http.MethodGet, "https://proxy.example"+path+"?code=x", nil)); got != want {
			t.Errorf("URLCarriesSecret(%s) = %v", path, got)
		}
	}
	b := newBrowser(t, e.h)
	for _, tt := range []struct {
		method, path string
		status       int
	}{
		{"GET", "/_signin", 404}, {"GET", "/_signin/nope", 404}, {"POST", "/_signin/login", 405},
		{"DELETE", "/_signin/logout", 405}, {"POST", "/_signin/callback", 405}, {"GE", "/_signin/login", 405},
	} {
		w := b.do(b.request(tt.method, tt.path, nil))
		if w.Code != tt.status || w.Header().Get("Cache-Control") != "no-store" {
			t.Errorf("%s %s = %d", tt.method, tt.path, w.Code)
		}
	}
}

func TestNewValidates(t *testing.T) {
	sm, _ := session.NewManager(session.Config{Keys: [][]byte{key()}}, nil)
	for name, cfg := range map[string]Config{
		"root path":                  {Path: "/"},
		"relative path":              {Path: ".auth"},
		"trailing slash":             {Path: "/.auth/"},
		"bad scope":                  {Scopes: []string{"a b"}},
		"negative login timeout":     {LoginTimeout: -1},
		"login timeout under 1m":     {LoginTimeout: 59 * time.Second},
		"login timeout over an hour": {LoginTimeout: 61 * time.Minute},
	} {
		if _, err := New(cfg, &fakeIDP{}, sm); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := New(Config{}, nil, sm); err == nil {
		t.Error("nil identity provider accepted")
	}
	h, err := New(Config{}, &fakeIDP{}, sm)
	if err != nil || h.cfg.Path != "/.auth" || h.cfg.LoginTimeout != 10*time.Minute {
		t.Fatalf("defaults: %v %+v", err, h)
	}
}

// TestNeverServerError throws malformed requests at every endpoint: none may answer 500 or redirect off-site.
func TestNeverServerError(t *testing.T) {
	e := newEnv(t, Config{}, session.Config{Partitioned: true})
	b := newBrowser(t, e.h)
	state := e.login(t, b, "")
	queries := []string{"", "state=", "state=" + state, "code=x", "state=" + strings.Repeat("a", 5000) + "&code=x",
		"state=%00&code=%00", "error=", "error=x&state=" + state, "state=" + state + "&code=" + strings.Repeat("c", 10000),
		"return_to=%00", "mode=popup&return_to=" + url.QueryEscape("https://evil.example"), "claims=%7B", "scope=%00"}
	for _, ep := range []string{"login", "callback", "logout", "me"} {
		for _, q := range queries {
			w := b.get("/.auth/" + ep + "?" + q)
			if w.Code >= 500 {
				t.Errorf("%s?%s = %d", ep, q, w.Code)
			}
			if loc := w.Header().Get("Location"); loc != "" && !strings.HasPrefix(loc, "/") &&
				!strings.HasPrefix(loc, "https://login.example/") {
				t.Errorf("%s?%s redirects to %q", ep, q, loc)
			}
		}
	}
	for _, body := range []string{"", "handoff=", "handoff=%00", `{"handoff":1}`, strings.Repeat("x", 20000)} {
		w := b.do(b.request(http.MethodPost, "/.auth/handoff", strings.NewReader(body), "Origin", "https://proxy.example",
			"Content-Type", "application/x-www-form-urlencoded"))
		if w.Code != http.StatusBadRequest {
			t.Errorf("handoff %.20q = %d", body, w.Code)
		}
	}
}

// popupHandoff signs in in a popup with the login query and returns the handoff its page carries ("" if none).
func popupHandoff(t *testing.T, e *env, query string) string {
	t.Helper()
	b := newBrowser(t, e.h)
	w := b.callback(e.login(t, b, query), "code-"+randomString(8))
	if w.Code != http.StatusOK {
		t.Fatalf("callback = %d: %s", w.Code, w.Body)
	}
	mm := message.FindStringSubmatch(w.Body.String())
	if mm == nil {
		t.Fatalf("no message in %s", w.Body)
	}
	var msg struct{ Handoff string }
	if err := json.Unmarshal([]byte(mm[1]), &msg); err != nil {
		t.Fatal(err)
	}
	return msg.Handoff
}

// redeemHandoff posts a handoff and binding from the framed add-in (another cookie partition).
func redeemHandoff(t *testing.T, e *env, handoff, binding string, asJSON bool) (*httptest.ResponseRecorder, *browser) {
	t.Helper()
	iframe := newBrowser(t, e.h)
	body, ct := url.Values{"handoff": {handoff}, "binding": {binding}}.Encode(), "application/x-www-form-urlencoded"
	if asJSON {
		b, _ := json.Marshal(map[string]string{"handoff": handoff, "binding": binding})
		body, ct = string(b), "application/json"
	}
	r := iframe.request(http.MethodPost, "/.auth/handoff", strings.NewReader(body), "Origin", "https://app.example",
		"Sec-Fetch-Site", "cross-site", "Sec-Fetch-Mode", "cors", "Content-Type", ct, "Accept", "application/json")
	return iframe.do(r), iframe
}

func TestHandoffBinding(t *testing.T) {
	bind := randomString(24)
	tests := []struct {
		name    string
		login   string // the popup's binding at login; "" for none
		present string // the binding the add-in presents
		asJSON  bool
		ok      bool
	}{
		{"same binding, form", bind, bind, false, true},
		{"same binding, JSON", bind, bind, true, true},
		{"another binding", bind, randomString(24), false, false},
		{"binding one character off", bind, bind[:len(bind)-1] + map[bool]string{true: "B", false: "A"}[bind[len(bind)-1] == 'A'], true, false},
		{"no binding presented", bind, "", false, false},
		{"no binding at login", "", "", false, false},
		{"no binding at login, one presented", "", bind, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, Config{}, session.Config{Partitioned: true})
			q := "mode=popup"
			if tt.login != "" {
				q += "&binding=" + tt.login
			}
			handoff := popupHandoff(t, e, q)
			if handoff == "" {
				if tt.ok {
					t.Fatal("no handoff")
				}
				return // nothing to replay
			}
			w, iframe := redeemHandoff(t, e, handoff, tt.present, tt.asJSON)
			if tt.ok != (w.Code == http.StatusOK) || tt.ok != iframe.hasSession(e.sessions) {
				t.Fatalf("handoff = %d (session %v), want ok=%v: %s", w.Code, iframe.hasSession(e.sessions), tt.ok, w.Body)
			}
			if !tt.ok && w.Code != http.StatusBadRequest {
				t.Fatalf("refused handoff = %d, want 400", w.Code)
			}
		})
	}
}

func TestLoginRefusesBadBinding(t *testing.T) {
	e := newEnv(t, Config{}, session.Config{Partitioned: true})
	for _, bad := range []string{"short", strings.Repeat("a", 21), strings.Repeat("a", 129), "has space in it and is long", "bad+chars/in=it" + strings.Repeat("a", 20),
		strings.Repeat("é", 30)} {
		b := newBrowser(t, e.h)
		if w := b.get("/.auth/login?mode=popup&binding=" + url.QueryEscape(bad)); w.Code != http.StatusBadRequest || len(b.cookies) != 0 {
			t.Errorf("binding %q: %d", bad, w.Code)
		}
	}
	for _, good := range []string{strings.Repeat("a", 22), randomString(32), strings.Repeat("-_", 64)} {
		if w := newBrowser(t, e.h).get("/.auth/login?mode=popup&binding=" + good); w.Code != http.StatusFound {
			t.Errorf("binding %q: %d", good, w.Code)
		}
	}
}

// TestBindingKeptOutOfAccessLogs: the binding is half of what redeems a handoff, so a login URL carrying one is
// not access-logged, like the callback's code.
func TestBindingKeptOutOfAccessLogs(t *testing.T) {
	e := newEnv(t, Config{}, session.Config{Partitioned: true})
	for target, want := range map[string]bool{
		"/.auth/login?mode=popup&binding=" + randomString(24): true,
		"/.auth/login?mode=popup":                             false,
		"/.auth/callback?code=x":                              true,
		"/.auth/me?binding=x":                                 false,
	} {
		if got := e.h.URLCarriesSecret(httptest.NewRequest(http.MethodGet, "https://proxy.example"+target, nil)); got != want {
			t.Errorf("URLCarriesSecret(%s) = %v, want %v", target, got, want)
		}
	}
}
