package signin

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/tokeninjector/caddy-token-injector/internal/session"
)

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
