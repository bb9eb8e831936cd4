package caddymodule_test

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/tokeninjector/caddy-token-injector/internal/session"
)

// A sign-in response captured on its way to the callback (a proxy's log, a browser's history, a shoulder) is
// accepted once. The used state and code are the registration's, not one handler's: a reload in between must not
// make the replay new again, and it is refused before the code reaches Entra.
func TestCallbackReplayAfterAReloadIsRefusedBeforeEntra(t *testing.T) {
	startCaddy(t)
	user := freshUser(t)
	var (
		mu       sync.Mutex
		callback *url.URL
		cookies  []*http.Cookie
	)
	var b *browser
	b = newBrowserSeeing(t, func(req *http.Request) {
		if strings.HasSuffix(req.URL.Path, "/.auth/callback") && req.URL.Query().Get("code") != "" {
			mu.Lock()
			callback, cookies = req.URL, b.Cookies(signInSite) // the pre-login cookie, before the callback ends it
			mu.Unlock()
		}
	})
	if status, _, body := b.signIn(signInSite+"/graph/me", user.Key); status != 200 {
		t.Fatalf("sign-in: %d %.300s", status, body)
	}
	mu.Lock()
	defer mu.Unlock()
	if callback == nil || len(cookies) == 0 {
		t.Fatalf("no callback seen (%v) or no pre-login cookie (%d cookies)", callback, len(cookies))
	}

	loadConfig(t, siteConfig(errorRoutes+"\n\trespond /replay-reload 200")) // a reload: new handlers, same state
	before := tokenRequests()
	req, _ := http.NewRequest(http.MethodGet, callback.String(), nil)
	for _, c := range cookies {
		req.AddCookie(c)
	}
	noRedirects := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirects.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "already used") {
		t.Fatalf("replayed callback after a reload: %d %.300s, want 400 \"already used\"", resp.StatusCode, body)
	}
	if n := tokenRequests() - before; n != 0 {
		t.Fatalf("the replay made %d token requests, want 0: it must be refused before Entra", n)
	}
	for _, c := range resp.Cookies() {
		if c.Name == session.DefaultInsecureCookieName && c.Value != "" {
			t.Fatal("the replay was given a session cookie")
		}
	}
}
