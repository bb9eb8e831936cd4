package testenv

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"time"
)

// Browser is one user's browser: a cookie jar, and redirects followed as a browser follows them. It signs in
// through the emulator's user picker, whose form posts user=<key> back to the authorize URL.
type Browser struct {
	// Client is the browser's HTTP client; tests may replace its CheckRedirect.
	Client *http.Client
}

// BrowserOptions configures NewBrowser.
type BrowserOptions struct {
	// Transport is shared by many browsers in load tests; nil makes a transport trusting TLS.
	Transport http.RoundTripper
	TLS       *tls.Config
	// OnRedirect sees every redirect before it is followed (say, to note the authorization codes it carries).
	OnRedirect func(*http.Request)
	// StopAt, when it returns true for a redirect, stops there: the redirect response is returned as is.
	StopAt func(*http.Request) bool
}

// Page is a response the browser read to the end.
type Page struct {
	Status int
	URL    *url.URL // where the browser ended up
	Header http.Header
	Body   []byte
}

// JSON decodes the body as a JSON object.
func (p *Page) JSON() (map[string]any, error) {
	var v map[string]any
	if err := json.Unmarshal(p.Body, &v); err != nil {
		return nil, fmt.Errorf("%d at %s: body is not a JSON object: %.200s", p.Status, p.URL, p.Body)
	}
	return v, nil
}

// NewBrowser returns a browser with an empty cookie jar.
func NewBrowser(o BrowserOptions) *Browser {
	jar, _ := cookiejar.New(nil)
	tr := o.Transport
	if tr == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.TLSClientConfig = o.TLS
		tr = t
	}
	c := &http.Client{Jar: jar, Transport: tr, Timeout: time.Minute}
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if o.OnRedirect != nil {
			o.OnRedirect(req)
		}
		// A browser's Referer names the document that started the navigation, never a redirect in between;
		// Go's client would send the callback URL, code and all.
		req.Header.Del("Referer")
		if len(via) >= 10 {
			return errors.New("too many redirects")
		}
		if o.StopAt != nil && o.StopAt(req) {
			return http.ErrUseLastResponse
		}
		return nil
	}
	return &Browser{Client: c}
}

// StopAtAuthorize is a BrowserOptions.StopAt that stops at the identity provider's authorize endpoint on host,
// so that fetching the picker page is the test's choice.
func StopAtAuthorize(host string) func(*http.Request) bool {
	return func(req *http.Request) bool {
		return req.Method == http.MethodGet && req.URL.Host == host && strings.HasSuffix(req.URL.Path, "/authorize")
	}
}

// Navigate GETs rawURL as a top-level navigation.
func (b *Browser) Navigate(rawURL string) (*Page, error) {
	req, err := http.NewRequest(http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/html,application/xhtml+xml")
	req.Header.Set("Sec-Fetch-Mode", "navigate")
	return b.Do(req)
}

// Fetch GETs rawURL as a script's fetch would.
func (b *Browser) Fetch(rawURL string) (*Page, error) {
	req, err := http.NewRequest(http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Sec-Fetch-Mode", "cors")
	return b.Do(req)
}

// Do sends req and reads the whole answer.
func (b *Browser) Do(req *http.Request) (*Page, error) {
	resp, err := b.Client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return &Page{Status: resp.StatusCode, URL: resp.Request.URL, Header: resp.Header, Body: body}, err
}

// OffersUser reports whether page is the emulator's picker with a button for user.
func OffersUser(page *Page, user string) bool {
	return page.Status == http.StatusOK && strings.Contains(string(page.Body), `name="user" value="`+user+`"`)
}

// PickUser submits the picker's form for user to the authorize URL the picker was served at, and goes through
// the emulator's MFA and consent steps when it shows them (approve, accept).
func (b *Browser) PickUser(authorizeURL, user string) (*Page, error) {
	page, err := b.postForm(authorizeURL, url.Values{"user": {user}})
	if err != nil || !IsEmulatorStep(page) {
		return page, err
	}
	return b.postForm(authorizeURL, url.Values{"user": {user}, "mfa": {"approved"}, "consent": {"accepted"}})
}

// IsEmulatorStep reports whether page is the emulator's MFA or consent step.
func IsEmulatorStep(page *Page) bool {
	return page.Status == http.StatusOK && strings.Contains(string(page.Body), `data-entraemu-step="`)
}

func (b *Browser) postForm(target string, form url.Values) (*Page, error) {
	req, err := http.NewRequest(http.MethodPost, target, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "text/html")
	req.Header.Set("Sec-Fetch-Mode", "navigate")
	return b.Do(req)
}

// SignIn navigates to start, which must lead to the emulator's picker offering user, picks user, and returns
// where the browser ends up.
func (b *Browser) SignIn(start, user string) (*Page, error) {
	page, err := b.Navigate(start)
	if err != nil {
		return nil, err
	}
	if !OffersUser(page, user) {
		return page, fmt.Errorf("expected the emulator's sign-in page offering %s at %s, got %d: %.300s",
			user, page.URL, page.Status, page.Body)
	}
	return b.PickUser(page.URL.String(), user)
}

// Cookie returns the cookie name the browser holds for site, or nil.
func (b *Browser) Cookie(site, name string) *http.Cookie {
	for _, c := range b.Cookies(site) {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// Cookies returns the cookies the browser would send to site.
func (b *Browser) Cookies(site string) []*http.Cookie {
	u, err := url.Parse(site)
	if err != nil {
		return nil
	}
	return b.Client.Jar.Cookies(u)
}
