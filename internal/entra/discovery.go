package entra

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// discoveryTTL is how long an OpenID discovery document is reused. Entra changes them rarely; an hour bounds how
// long a moved endpoint goes unnoticed.
const discoveryTTL = time.Hour

// maxDiscoveryBytes bounds a discovery document; Entra's are a few KB.
const maxDiscoveryBytes = 1 << 20

// NewHTTPClient returns the client for every call to Entra: roots are the CAs trusted (nil: the system's),
// timeout backs up the per-call contexts. Its transport answers repeated GETs of OpenID discovery documents from
// memory, one fetch per document however many callers ask at once, so caller validation and token acquisition
// (a fresh MSAL client per call) share them.
func NewHTTPClient(roots *x509.CertPool, timeout time.Duration) *http.Client {
	base := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		TLSClientConfig:     &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2:   true,
		MaxIdleConnsPerHost: 64,
		// A herd of new users must not open one TLS connection to Entra per user: calls share HTTP/2
		// connections (or queue for one, within timeout) instead of dialling by the thousand.
		MaxConnsPerHost:     64,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: 10 * time.Second,
	}
	return &http.Client{Transport: correlated{&discoveryCache{next: bounded{base}, docs: map[string]cachedDoc{}}}, Timeout: 2 * timeout}
}

// maxResponseBytes bounds every answer read from the identity provider: its token responses and documents are a
// few KB, and a hostile or broken one must not make the proxy read (and hold) megabytes.
const maxResponseBytes = 1 << 20

// bounded makes every response body fail once it passes maxResponseBytes.
type bounded struct{ *http.Transport }

func (b bounded) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := b.Transport.RoundTrip(r)
	if err == nil {
		resp.Body = &limitedBody{ReadCloser: resp.Body, left: maxResponseBytes}
	}
	return resp, err
}

// ErrResponseTooLarge is the read error of an answer over maxResponseBytes.
var ErrResponseTooLarge = errors.New("the identity provider's answer is larger than 1 MiB")

type limitedBody struct {
	io.ReadCloser
	left int64
}

func (l *limitedBody) Read(p []byte) (int, error) {
	if l.left <= 0 {
		return 0, ErrResponseTooLarge
	}
	if int64(len(p)) > l.left {
		p = p[:l.left+1] // one byte more tells "exactly the limit" from "over it"
	}
	n, err := l.ReadCloser.Read(p)
	l.left -= int64(n)
	if l.left < 0 {
		return n, ErrResponseTooLarge
	}
	return n, err
}

// CloseIdleConnections closes the idle connections of a client made by NewHTTPClient.
func CloseIdleConnections(c *http.Client) {
	c.CloseIdleConnections() // through correlated's, to the base transport
}

// discoveryCache is a RoundTripper that serves OpenID discovery documents from memory. Everything else passes
// through.
type discoveryCache struct {
	next    bounded
	flights singleflight.Group
	mu      sync.Mutex
	docs    map[string]cachedDoc
}

type cachedDoc struct {
	status  int
	body    []byte
	header  http.Header
	expires time.Time
}

func (d *discoveryCache) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method != http.MethodGet || !strings.HasSuffix(r.URL.Path, "/.well-known/openid-configuration") {
		return d.next.RoundTrip(r)
	}
	// MSAL asks for ".../openid-configuration?" with an empty query: the same document.
	key := r.URL.Scheme + "://" + r.URL.Host + r.URL.Path + "?" + r.URL.RawQuery
	key = strings.TrimSuffix(key, "?")
	d.mu.Lock()
	doc, ok := d.docs[key]
	d.mu.Unlock()
	if ok && time.Now().Before(doc.expires) {
		return doc.response(r), nil
	}
	v, err, _ := d.flights.Do(key, func() (any, error) { return d.fetch(r, key) })
	if err != nil {
		return nil, err
	}
	return v.(cachedDoc).response(r), nil
}

// fetch gets the document for every caller waiting on key. Only a 200 is kept; any other answer is handed to
// this flight's callers as it came.
func (d *discoveryCache) fetch(r *http.Request, key string) (cachedDoc, error) {
	resp, err := d.next.RoundTrip(r)
	if err != nil {
		return cachedDoc{}, err
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxDiscoveryBytes))
	resp.Body.Close()
	if err != nil {
		return cachedDoc{}, err
	}
	doc := cachedDoc{status: resp.StatusCode, body: body, header: resp.Header.Clone(), expires: time.Now().Add(discoveryTTL)}
	if resp.StatusCode != http.StatusOK {
		return doc, nil
	}
	d.mu.Lock()
	if len(d.docs) > 64 { // a handful of tenants at most; never grow without bound
		clear(d.docs)
	}
	d.docs[key] = doc
	d.mu.Unlock()
	return doc, nil
}

func (c cachedDoc) response(r *http.Request) *http.Response {
	return &http.Response{
		Status: http.StatusText(c.status), StatusCode: c.status, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: c.header.Clone(), Body: io.NopCloser(bytes.NewReader(c.body)), ContentLength: int64(len(c.body)),
		Request: r,
	}
}
