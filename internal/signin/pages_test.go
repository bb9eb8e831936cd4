package signin

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/tokeninjector/caddy-token-injector/internal/identity"
	"github.com/tokeninjector/caddy-token-injector/internal/session"
)

var (
	cspNonce    = regexp.MustCompile(`script-src 'nonce-([A-Za-z0-9_-]+)'`)
	scriptNonce = regexp.MustCompile(`<script nonce="([^"]+)">`)
	targets     = regexp.MustCompile(`origins = (\[[^\]]*\])`)
	message     = regexp.MustCompile(`var msg = (\{.*?\}), origins`)
)

// completion signs in with mode and returns the callback's response.
func completion(t *testing.T, e *env, mode string, query ...string) *httptest.ResponseRecorder {
	t.Helper()
	b := newBrowser(t, e.h)
	state := e.login(t, b, "mode="+mode+"&return_to=/app"+strings.Join(query, ""))
	w := b.callback(state, "code-"+mode)
	if w.Code != http.StatusOK {
		t.Fatalf("callback = %d: %s", w.Code, w.Body)
	}
	if !b.hasSession(e.sessions) {
		t.Fatal("no session after a popup sign-in")
	}
	return w
}

func jsUnescape(t *testing.T, s string) string {
	t.Helper()
	// html/template writes JSON with \u0026-style escapes; json.Unmarshal reads them.
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("%s: %v", s, err)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func TestPopupCompletionPage(t *testing.T) {
	e := newEnv(t, Config{CORS: policy(t, "https://app.example", "https://other.example:8443")}, session.Config{})
	w := completion(t, e, "popup")
	body, csp := w.Body.String(), w.Header().Get("Content-Security-Policy")

	m := cspNonce.FindStringSubmatch(csp)
	s := scriptNonce.FindStringSubmatch(body)
	if m == nil || s == nil || m[1] != s[1] || len(m[1]) < 22 {
		t.Fatalf("CSP nonce %v does not match the script's %v\nCSP: %s", m, s, csp)
	}
	for _, want := range []string{"default-src 'none'", "frame-ancestors 'none'", "base-uri 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP lacks %q: %s", want, csp)
		}
	}
	if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "appsforoffice") {
		t.Errorf("CSP too loose for a popup: %s", csp)
	}
	if strings.Count(body, "<script") != 1 || strings.Contains(body, "office.js") {
		t.Fatal("a popup page must not load office.js")
	}
	tm := targets.FindStringSubmatch(body)
	if tm == nil {
		t.Fatalf("no origins in %s", body)
	}
	got := jsUnescape(t, tm[1])
	if got != `["https://proxy.example","https://app.example","https://other.example:8443"]` {
		t.Fatalf("postMessage targets = %s", got)
	}
	if strings.Contains(body, `"*"`) || strings.Contains(body, `'*'`) {
		t.Fatal("the page posts to \"*\"")
	}
	mm := message.FindStringSubmatch(body)
	if mm == nil {
		t.Fatalf("no message in %s", body)
	}
	msg := jsUnescape(t, mm[1])
	if !strings.Contains(msg, `"type":"token_injector:signed_in"`) || !strings.Contains(msg, `"username":"ada@example.com"`) ||
		strings.Contains(msg, "handoff") {
		t.Fatalf("message = %s", msg)
	}
	// The page closes once the opener acknowledges this message's id (the kit does), or after the fallback delay;
	// the browser tests (clientkit) prove no sign-in is lost.
	if !regexp.MustCompile(`"id":"[A-Za-z0-9_-]{16}"`).MatchString(msg) || !strings.Contains(body, `"token_injector:ack"`) ||
		!strings.Contains(body, "fallbackMs = 3000") {
		t.Fatalf("the page does not wait for an acknowledgement of its message: %s", msg)
	}
	// The name is escaped for the script context, not injected.
	if strings.Contains(body, "Ada <Lovelace>") {
		t.Fatal("the user's name reached the page unescaped")
	}
	for _, secret := range []string{"code-popup", e.idp.redeems[0].CodeVerifier, e.idp.lastAuth(t).State} {
		if strings.Contains(body, secret) {
			t.Fatal("the completion page shows a secret")
		}
	}
	if w.Header().Get("Referrer-Policy") != "no-referrer" {
		t.Fatal("the callback page may leak its URL in Referer")
	}
}

func TestDialogCompletionPage(t *testing.T) {
	e := newEnv(t, Config{}, session.Config{})
	w := completion(t, e, "dialog")
	body, csp := w.Body.String(), w.Header().Get("Content-Security-Policy")
	if !strings.Contains(body, `<script src="https://appsforoffice.microsoft.com/lib/1/hosted/office.js" nonce="`) {
		t.Fatalf("dialog page does not load office.js:\n%s", body)
	}
	if !strings.Contains(csp, "script-src 'nonce-") || !strings.Contains(csp, " https://appsforoffice.microsoft.com") ||
		strings.Contains(csp, "frame-ancestors") {
		t.Fatalf("CSP = %s", csp)
	}
	if !strings.Contains(body, "messageParent") || !strings.Contains(body, "Office.onReady") {
		t.Fatal("dialog page does not message the Office parent")
	}
}

func TestPopupFailureNotifiesOpener(t *testing.T) {
	e := newEnv(t, Config{}, session.Config{})
	b := newBrowser(t, e.h)
	state := e.login(t, b, "mode=popup")
	w := b.get("/.auth/callback?error=access_denied&state="+state, "Sec-Fetch-Site", "cross-site")
	if w.Code != http.StatusUnauthorized || !strings.Contains(w.Body.String(), "token_injector:sign_in_failed") ||
		!regexp.MustCompile(`autoClose =\s*false\s*;`).MatchString(w.Body.String()) {
		t.Fatalf("failure page = %d\n%s", w.Code, w.Body)
	}
}

func TestPartitionedHandoff(t *testing.T) {
	e := newEnv(t, Config{}, session.Config{Partitioned: true})
	bind := randomString(24)
	w := completion(t, e, "dialog", "&binding="+bind)
	mm := message.FindStringSubmatch(w.Body.String())
	if mm == nil {
		t.Fatal("no message")
	}
	var msg struct {
		Type, Handoff string
	}
	if err := json.Unmarshal([]byte(mm[1]), &msg); err != nil || msg.Handoff == "" {
		t.Fatalf("message %s has no handoff (%v)", mm[1], err)
	}
	redeem := func(origin, v string, contentType string) *httptest.ResponseRecorder {
		iframe := newBrowser(t, e.h) // the framed add-in: another cookie partition, no session yet
		body := "handoff=" + url.QueryEscape(v) + "&binding=" + bind
		if contentType == "application/json" {
			body = `{"handoff":"` + v + `","binding":"` + bind + `"}`
		}
		r := iframe.request(http.MethodPost, "/.auth/handoff", strings.NewReader(body),
			"Origin", origin, "Content-Type", contentType, "Sec-Fetch-Mode", "cors", "Accept", "application/json")
		w := iframe.do(r)
		if w.Code == http.StatusOK && !iframe.hasSession(e.sessions) {
			t.Fatal("handoff answered 200 without a session")
		}
		return w
	}
	if w := redeem("https://evil.example", msg.Handoff, "application/x-www-form-urlencoded"); w.Code != http.StatusForbidden {
		t.Fatalf("foreign origin handoff = %d", w.Code)
	}
	w = redeem("https://proxy.example", msg.Handoff, "application/json")
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"user_key":"oid-1.tid-1"`) {
		t.Fatalf("handoff = %d %s", w.Code, w.Body)
	}
	c := (&http.Response{Header: w.Header()}).Cookies()
	if len(c) != 1 || !c[0].Partitioned || c[0].SameSite != http.SameSiteNoneMode || !c[0].Secure {
		t.Fatalf("handoff cookie = %v", w.Header().Values("Set-Cookie"))
	}
	if w := redeem("https://proxy.example", msg.Handoff, "application/x-www-form-urlencoded"); w.Code != http.StatusBadRequest {
		t.Fatalf("second handoff = %d", w.Code)
	}
	// Expired handoffs are refused.
	fresh, _ := e.h.sealHandoff(identity.User{ObjectID: "u", TenantID: "t"}, bindingHash(bind))
	e.clock.Advance(handoffTTL)
	if w := redeem("https://app.example", fresh, "application/x-www-form-urlencoded"); w.Code != http.StatusBadRequest {
		t.Fatalf("expired handoff = %d", w.Code)
	}
	// A pre-login value is not a handoff.
	pre, _ := e.sessions.Seal([]byte(`{"id":"x","exp":9999999999,"uk":"u.t","bh":"`+bindingHash(bind)+`"}`), preLoginPurpose)
	if w := redeem("https://proxy.example", pre, "application/x-www-form-urlencoded"); w.Code != http.StatusBadRequest {
		t.Fatalf("pre-login value as handoff = %d", w.Code)
	}
}

func TestHandoffOffWithoutPartitioning(t *testing.T) {
	e := newEnv(t, Config{}, session.Config{})
	b := newBrowser(t, e.h)
	w := b.do(b.request(http.MethodPost, "/.auth/handoff", strings.NewReader("handoff=x"), "Origin", "https://proxy.example",
		"Content-Type", "application/x-www-form-urlencoded"))
	if w.Code != http.StatusNotFound {
		t.Fatalf("handoff = %d", w.Code)
	}
}
