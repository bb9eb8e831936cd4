package harness

import (
	"fmt"
	"net/http"
	"net/url"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/tokeninjector/caddy-token-injector/internal/dev/entraemu"
	"github.com/tokeninjector/caddy-token-injector/internal/dev/testenv"
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
	idp, err := url.Parse(e.A.Server.URL)
	if err != nil {
		return nil, res, err
	}
	tr := &http.Transport{MaxIdleConnsPerHost: 64, ForceAttemptHTTP2: true, TLSClientConfig: e.A.TLSConfig()}
	defer tr.CloseIdleConnections()
	opts := testenv.BrowserOptions{Transport: tr, StopAt: testenv.StopAtAuthorize(idp.Host)}

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
				o := opts
				o.Transport = forwardedFor{next: tr, client: fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255)}
				b := testenv.NewBrowser(o)
				readPage := i < pages
				oid, err := signIn(b, e.Origin()+path+"me", users[i].Key, readPage)
				switch {
				case err != nil:
					fail(false, fmt.Errorf("user %s: %w", users[i].Key, err))
					continue
				case oid != users[i].ObjectID:
					fail(true, fmt.Errorf("user %s: signed in as oid %q, want %q", users[i].Key, oid, users[i].ObjectID))
					continue
				}
				c := b.Cookie(e.Origin(), SessionCookie)
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

// signIn navigates to start, picks user on the emulator's sign-in page (reading the page first if readPage), and
// returns the oid the landing page (the token-checking stub's echo) names. b stops at the authorize endpoint.
func signIn(b *testenv.Browser, start, user string, readPage bool) (string, error) {
	page, err := b.Navigate(start)
	if err != nil {
		return "", err
	}
	authorize, err := page.URL.Parse(page.Header.Get("Location"))
	if page.Status != http.StatusFound || err != nil {
		return "", fmt.Errorf("navigation to %s: %d at %s, not a redirect to the identity provider: %.300s",
			start, page.Status, page.URL, page.Body)
	}
	if readPage {
		if page, err = b.Navigate(authorize.String()); err != nil {
			return "", err
		}
		if !testenv.OffersUser(page, user) {
			return "", fmt.Errorf("expected the emulator's sign-in page offering %s at %s, got %d: %.300s",
				user, authorize, page.Status, page.Body)
		}
	}
	if page, err = b.PickUser(authorize.String(), user); err != nil {
		return "", err
	}
	// The proxy limits code redemptions; a 429 at the callback is honoured as a browser user would, by coming
	// back after Retry-After (the sign-in attempt is not used up by the refusal).
	for page.Status == http.StatusTooManyRequests {
		secs, _ := strconv.Atoi(page.Header.Get("Retry-After"))
		time.Sleep(time.Duration(max(secs, 1)) * time.Second)
		if page, err = b.Navigate(page.URL.String()); err != nil {
			return "", err
		}
	}
	oid, status, err := echoOID(page.Status, page.Body)
	if err == nil && status != http.StatusOK {
		err = fmt.Errorf("after sign-in: %d at %s: %.300s", status, page.URL, page.Body)
	}
	if err == nil && page.URL.String() != start {
		err = fmt.Errorf("after sign-in: landed at %s, want %s", page.URL, start)
	}
	return oid, err
}

// forwardedFor sends every request as from client, behind a proxy (see Site.JSON's trusted_proxies).
type forwardedFor struct {
	next   http.RoundTripper
	client string
}

func (f forwardedFor) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("X-Forwarded-For", f.client)
	return f.next.RoundTrip(r)
}
