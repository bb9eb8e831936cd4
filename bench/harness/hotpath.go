package harness

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// HotPath calls a provisioned token_injector's ServeHTTP directly on the cache-hit path: the caller's token is
// validated (a token proven before costs a hash and an LRU lookup), the downstream token comes from the cache,
// Authorization is replaced, and next is called. Users' tokens must be cached already (Warm). A session hot path
// (NewSessionHotPath) sends the session cookie instead of a bearer token: the cookie is opened (AES-GCM), the
// session looked up in the store, the token taken from the same cache, and the cookie stripped.
type HotPath struct {
	h      caddyhttp.MiddlewareHandler
	url    string   // the request URL: its host decides the session cookie's name
	header string   // the credential's header: Authorization or Cookie
	creds  []string // its value, one per user
	oids   []string // the users' object ids, to check whose token was injected
}

// NewHotPath wraps the captured handler name for the users whose caller tokens and object ids are given.
func NewHotPath(name string, tokens, oids []string) (*HotPath, error) {
	creds := make([]string, len(tokens))
	for i, t := range tokens {
		creds[i] = "Bearer " + t
	}
	return newHotPath(name, "http://bench.local"+PathInj+"me", "Authorization", creds, oids)
}

// NewSessionHotPath wraps the captured sign_in handler name for signed-in users: each request carries only
// "Cookie: <cookies[i]>" (as SignIn returns them), sent to this Env's origin so the cookie has the name the
// handler expects there.
func (e *Env) NewSessionHotPath(name string, cookies, oids []string) (*HotPath, error) {
	return newHotPath(name, e.Origin()+PathSess+"me", "Cookie", cookies, oids)
}

func newHotPath(name, url, header string, creds, oids []string) (*HotPath, error) {
	h, err := Captured(name)
	if err != nil {
		return nil, err
	}
	if len(creds) == 0 || len(creds) != len(oids) {
		return nil, errors.New("hotpath: need one object id per credential")
	}
	return &HotPath{h: h, url: url, header: header, creds: creds, oids: oids}, nil
}

// Client is one goroutine's view: its own request templates, cycling through the users.
type Client struct {
	p *HotPath
	// req is every request's template: the users' requests differ only in the credential. Its strings (the
	// URL's, Host) are read by every request, so they are in the CPU's caches as a server's just-parsed ones
	// are; one template per user put them cold in main memory at scale, a miss a server does not have.
	req  *http.Request
	w    nopWriter
	i    int
	ctx  context.Context
	next caddyhttp.Handler
	seen string
	// seenCookie is the Cookie header next received.
	seenCookie []string

	// What the request in flight is made of, rebuilt for every request (see request).
	url    url.URL
	header http.Header
	cred   [1]string
	// touched keeps touch's reads from being optimized away.
	touched byte
}

// NewClient returns a client; it is not safe for concurrent use.
func (p *HotPath) NewClient() *Client {
	c := &Client{p: p, ctx: context.Background(), w: nopWriter{h: http.Header{}}, header: http.Header{},
		req: httptest.NewRequest(http.MethodGet, p.url, nil)}
	c.next = caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil })
	return c
}

// request builds what Caddy's server builds per request for the handler. Like the server's parser, it gives the
// request its own URL and header map, fresh in memory, from the one template (see Client.req). The credential is
// the user's, read through once as the parser would have written it (touch): a fresh copy per request would cost
// the baseline a 1.6 KB allocation and make both sides noisier with GC. Then it puts the request's vars and a
// Replacer with the http.* placeholders in the context (caddyhttp.NewTestReplacer does what the server does). Its
// cost is the same with and without the handler, so Baseline measures it alone.
func (c *Client) request() *http.Request {
	u := c.i % len(c.p.creds)
	c.i++
	base := c.req
	c.url = *base.URL
	clear(c.header)
	for k, v := range base.Header {
		c.header[k] = v
	}
	c.cred[0] = c.p.creds[u] // the handler writes the downstream token over it, or strips it
	c.touch(c.cred[0])
	c.header[c.p.header] = c.cred[:]
	r := base.WithContext(context.WithValue(c.ctx, caddyhttp.VarsCtxKey, map[string]any{}))
	r.URL, r.Header = &c.url, c.header
	caddyhttp.NewTestReplacer(r)
	return r
}

// touch reads every cache line of s, as a server's parser has just written them.
func (c *Client) touch(s string) {
	for i := 0; i < len(s); i += 64 {
		c.touched += s[i]
	}
}

// Serve sends the next user's request through the handler.
func (c *Client) Serve() error { return c.p.h.ServeHTTP(&c.w, c.request(), c.next) }

// Baseline builds the next request and calls next without the handler: subtract it from Serve.
func (c *Client) Baseline() error { return c.next.ServeHTTP(&c.w, c.request()) }

// Check sends user i's request and verifies that next got a downstream token issued for that user (not the
// caller's credential), that a session cookie did not reach next, and that nothing was written to the client.
func (c *Client) Check(i int) error {
	c.i = i
	next := caddyhttp.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) error {
		c.seen = r.Header.Get("Authorization")
		c.seenCookie = r.Header.Values("Cookie")
		return nil
	})
	c.seen, c.seenCookie, c.w.status = "", nil, 0
	r := c.request()
	if err := c.p.h.ServeHTTP(&c.w, r, next); err != nil {
		return err
	}
	caller := c.p.creds[i%len(c.p.creds)]
	switch {
	case c.w.status != 0:
		return fmt.Errorf("user %d: the handler answered %d itself (token not cached? session unknown?)", i, c.w.status)
	case !strings.HasPrefix(c.seen, "Bearer ") || c.seen == caller:
		return fmt.Errorf("user %d: upstream Authorization is not a downstream token", i)
	case c.p.header == "Cookie" && len(c.seenCookie) > 0:
		return fmt.Errorf("user %d: the session cookie reached the upstream", i)
	}
	oid, err := jwtClaim(strings.TrimPrefix(c.seen, "Bearer "), "oid")
	if err != nil || oid != c.p.oids[i%len(c.p.oids)] {
		return fmt.Errorf("user %d: downstream token is for oid %q, want %q (%v)", i, oid, c.p.oids[i%len(c.p.oids)], err)
	}
	return nil
}

// jwtClaim reads a string claim of a JWT without checking its signature (the emulator's downstream stub does that
// in the end-to-end checks).
func jwtClaim(tok, name string) (string, error) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return "", errors.New("not a JWT")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", err
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		return "", err
	}
	v, _ := claims[name].(string)
	return v, nil
}

// nopWriter discards the response; only a refusal writes on the cache-hit path.
type nopWriter struct {
	h      http.Header
	status int
}

func (w *nopWriter) Header() http.Header         { return w.h }
func (w *nopWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *nopWriter) WriteHeader(s int)           { w.status = s }

func init() { caddy.RegisterModule(capture{}) }

// capture is a Caddy handler that provisions its inner handler in the real config's context (logger, metrics
// registry, usage pools, module loading) and publishes it by name. The Go benchmarks then call the inner
// ServeHTTP directly, so they measure the handler exactly as Caddy set it up, with no network in the way; a
// bare caddy.NewContext would give it a development logger that prints to stderr instead.
type capture struct {
	Name     string          `json:"name"`
	InnerRaw json.RawMessage `json:"inner" caddy:"namespace=http.handlers inline_key=handler"`

	inner caddyhttp.MiddlewareHandler
}

var captured sync.Map // name -> caddyhttp.MiddlewareHandler

func (capture) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.handlers.bench_capture", New: func() caddy.Module { return new(capture) }}
}

func (c *capture) Provision(ctx caddy.Context) error {
	m, err := ctx.LoadModule(c, "InnerRaw")
	if err != nil {
		return err
	}
	h, ok := m.(caddyhttp.MiddlewareHandler)
	if !ok {
		return fmt.Errorf("bench_capture: %T is not a middleware handler", m)
	}
	c.inner = h
	captured.Store(c.Name, h)
	return nil
}

// Cleanup forgets the handler when its config is unloaded (Caddy cleans the inner module up itself).
func (c *capture) Cleanup() error {
	captured.CompareAndDelete(c.Name, c.inner)
	return nil
}

func (c *capture) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	return c.inner.ServeHTTP(w, r, next)
}

// Captured returns the handler provisioned under name by the running config.
func Captured(name string) (caddyhttp.MiddlewareHandler, error) {
	h, ok := captured.Load(name)
	if !ok {
		return nil, fmt.Errorf("no captured handler %q: is the config with Injector.Capture loaded?", name)
	}
	return h.(caddyhttp.MiddlewareHandler), nil
}

var (
	_ caddy.Provisioner  = (*capture)(nil)
	_ caddy.CleanerUpper = (*capture)(nil)
)

// Users is how many users p cycles through.
func (p *HotPath) Users() int { return len(p.creds) }
