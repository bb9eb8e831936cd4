package acquire

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// discoveryTTL is how long an OpenID discovery document is reused. Entra changes them rarely; an hour bounds how
// long a moved endpoint goes unnoticed.
const discoveryTTL = time.Hour

// discoveryCache is a RoundTripper that answers repeated GETs of OpenID discovery documents from memory, so that
// a fresh MSAL client per call costs no extra round trip. Everything else passes through.
type discoveryCache struct {
	next http.RoundTripper
	mu   sync.Mutex
	docs map[string]cachedDoc
}

type cachedDoc struct {
	body    []byte
	header  http.Header
	expires time.Time
}

func newDiscoveryCache(c *http.Client) *discoveryCache {
	next := c.Transport
	if next == nil {
		next = http.DefaultTransport
	}
	return &discoveryCache{next: next, docs: map[string]cachedDoc{}}
}

func (d *discoveryCache) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method != http.MethodGet || !strings.HasSuffix(r.URL.Path, "/.well-known/openid-configuration") {
		return d.next.RoundTrip(r)
	}
	key := r.URL.String()
	d.mu.Lock()
	doc, ok := d.docs[key]
	d.mu.Unlock()
	if ok && time.Now().Before(doc.expires) {
		return doc.response(r), nil
	}
	resp, err := d.next.RoundTrip(r)
	if err != nil || resp.StatusCode != http.StatusOK {
		return resp, err
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	doc = cachedDoc{body: body, header: resp.Header.Clone(), expires: time.Now().Add(discoveryTTL)}
	d.mu.Lock()
	if len(d.docs) > 64 { // a handful of tenants at most; never grow without bound
		clear(d.docs)
	}
	d.docs[key] = doc
	d.mu.Unlock()
	return doc.response(r), nil
}

func (c cachedDoc) response(r *http.Request) *http.Response {
	return &http.Response{
		Status: "200 OK", StatusCode: http.StatusOK, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: c.header.Clone(), Body: io.NopCloser(bytes.NewReader(c.body)), ContentLength: int64(len(c.body)),
		Request: r,
	}
}
