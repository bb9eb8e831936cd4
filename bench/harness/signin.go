package harness

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/tokeninjector/caddy-token-injector/internal/dev/entraemu"
)

// SignInResult is what signing users in found. Every sign-in must end with a 200 from the token-checking stub
// naming the user who picked themselves on the emulator's page.
type SignInResult struct {
	Users      int
	Failures   int           // sign-ins that did not end in a 200 with a session cookie
	Mismatches int           // sign-ins whose landing page named another user
	PagesRead  int           // sign-ins that fetched and checked the emulator's picker page
	Workers    int           // sign-ins in progress at once
	Took       time.Duration // wall time for all of them
	FirstError string
}

// SignIn signs each user in the way a browser does, each with its own cookie jar: a navigation to
// path+"me" (a sign_in route in front of the token-checking stub) is redirected to /.auth/login, then to the
// emulator's authorize endpoint; the user is picked there (a form POST of user=<key> to that URL); the emulator
// redirects to /.auth/callback, which redeems the code, sets the session cookie and returns to path+"me", whose
// echo must name the user. It returns each user's session cookie as "name=value", ready for a Cookie header.
//
// The picker page lists every user of the tenant (thousands in the suite, megabytes of HTML), and rendering it is
// the emulator's cost, not the proxy's; so only the first pages sign-ins fetch it and check that it offers the
// user. The others post the same form to the same URL directly. The proxy sees the same requests either way.
func (e *Env) SignIn(path string, users []entraemu.User, pages int) ([]string, SignInResult, error) {
	start := time.Now()
	res := SignInResult{Users: len(users), Workers: 4 * runtime.GOMAXPROCS(0)}
	site, err := url.Parse(e.Origin())
	if err != nil {
		return nil, res, err
	}
	idp, err := url.Parse(e.A.Server.URL)
	if err != nil {
		return nil, res, err
	}
	tr := &http.Transport{MaxIdleConnsPerHost: 64, ForceAttemptHTTP2: true}
	tr.TLSClientConfig = tlsConfigFor(e.A.CAPool)
	defer tr.CloseIdleConnections()

	cookies := make([]string, len(users))
	var mu sync.Mutex
	fail := func(mismatch bool, err error) {
		mu.Lock()
		defer mu.Unlock()
		if mismatch {
			res.Mismatches++
		} else {
			res.Failures++
		}
		if res.FirstError == "" {
			res.FirstError = err.Error()
		}
	}
	var wg sync.WaitGroup
	next := make(chan int)
	for range res.Workers {
		wg.Go(func() {
			for i := range next {
				b := newBrowser(tr, idp.Host)
				readPage := i < pages
				oid, err := b.signIn(e.Origin()+path+"me", users[i].Key, readPage)
				switch {
				case err != nil:
					fail(false, fmt.Errorf("user %s: %w", users[i].Key, err))
					continue
				case oid != users[i].ObjectID:
					fail(true, fmt.Errorf("user %s: signed in as oid %q, want %q", users[i].Key, oid, users[i].ObjectID))
					continue
				}
				c := b.cookie(site, SessionCookie)
				if c == nil {
					fail(false, fmt.Errorf("user %s: no %s cookie after sign-in", users[i].Key, SessionCookie))
					continue
				}
				cookies[i] = c.Name + "=" + c.Value
				if readPage {
					mu.Lock()
					res.PagesRead++
					mu.Unlock()
				}
			}
		})
	}
	for i := range users {
		next <- i
	}
	close(next)
	wg.Wait()
	res.Took = time.Since(start)
	if res.Failures > 0 || res.Mismatches > 0 {
		return cookies, res, fmt.Errorf("sign-in: %d failures, %d mismatches of %d: %s", res.Failures,
			res.Mismatches, res.Users, res.FirstError)
	}
	return cookies, res, nil
}

// browser is one user's cookie-keeping client that follows redirects like a browser, except that it stops at the
// emulator's authorize endpoint so that fetching the picker page is a choice.
type browser struct {
	client *http.Client
}

func newBrowser(tr http.RoundTripper, idpHost string) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{client: &http.Client{Jar: jar, Transport: tr, Timeout: time.Minute,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			// A browser's Referer names the document that started the navigation, never a redirect in between.
			req.Header.Del("Referer")
			if len(via) >= 10 {
				return errors.New("too many redirects")
			}
			if req.Method == http.MethodGet && req.URL.Host == idpHost && strings.HasSuffix(req.URL.Path, "/authorize") {
				return http.ErrUseLastResponse
			}
			return nil
		}}}
}

// signIn navigates to start, picks user on the emulator's sign-in page, and returns the oid the landing page (the
// token-checking stub's echo) names.
func (b *browser) signIn(start, user string, readPage bool) (string, error) {
	req, _ := http.NewRequest(http.MethodGet, start, nil)
	req.Header.Set("Accept", "text/html,application/xhtml+xml")
	req.Header.Set("Sec-Fetch-Mode", "navigate")
	resp, body, err := b.do(req)
	if err != nil {
		return "", err
	}
	authorize, err := resp.Location()
	if resp.StatusCode != http.StatusFound || err != nil {
		return "", fmt.Errorf("navigation to %s: %d at %s, not a redirect to the identity provider: %.300s",
			start, resp.StatusCode, resp.Request.URL, body)
	}
	if readPage {
		req, _ = http.NewRequest(http.MethodGet, authorize.String(), nil)
		req.Header.Set("Accept", "text/html")
		req.Header.Set("Sec-Fetch-Mode", "navigate")
		resp, body, err = b.do(req)
		if err != nil {
			return "", err
		}
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `name="user" value="`+user+`"`) {
			return "", fmt.Errorf("expected the emulator's sign-in page offering %s at %s, got %d: %.300s",
				user, authorize, resp.StatusCode, body)
		}
	}
	// The picker's form: POST user=<key> to the authorize URL, whose query carries the request.
	req, _ = http.NewRequest(http.MethodPost, authorize.String(), strings.NewReader(url.Values{"user": {user}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "text/html")
	req.Header.Set("Sec-Fetch-Mode", "navigate")
	resp, body, err = b.do(req)
	if err != nil {
		return "", err
	}
	oid, status, err := echoOID(resp.StatusCode, body)
	if err == nil && status != http.StatusOK {
		err = fmt.Errorf("after sign-in: %d at %s: %.300s", status, resp.Request.URL, body)
	}
	if err == nil && resp.Request.URL.String() != start {
		err = fmt.Errorf("after sign-in: landed at %s, want %s", resp.Request.URL, start)
	}
	return oid, err
}

func (b *browser) do(req *http.Request) (*http.Response, []byte, error) {
	resp, err := b.client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

func (b *browser) cookie(site *url.URL, name string) *http.Cookie {
	for _, c := range b.client.Jar.Cookies(site) {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func tlsConfigFor(roots *x509.CertPool) *tls.Config {
	return &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
}
