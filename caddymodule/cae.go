package caddymodule

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/tokeninjector/caddy-token-injector/internal/acquire"
	"github.com/tokeninjector/caddy-token-injector/internal/contract"
	"github.com/tokeninjector/caddy-token-injector/internal/tokencache"
)

// defaultRetryBodyLimit bounds the request bodies kept for a CAE retry, as reverse_proxy's request_buffers
// bounds what it buffers.
const defaultRetryBodyLimit = 1 << 20

// forward sends the request upstream with tok. When the upstream answers with a Continuous Access Evaluation
// claims challenge (contract.UpstreamChallenge: 401, error="insufficient_claims"), the client never sees that
// answer: the handler gets a token that satisfies the claims (On-Behalf-Of with them, or the session's refresh
// token) and sends the request once more, its body replayed. A second challenge, or Entra needing the user, is
// answered with the contract's interaction_required and the claims: one retry, no loops.
//
// Requests that cannot be replayed go upstream once, as they stream: upgrades (WebSocket), and bodies larger
// than the route's retry_body_limit or of unknown length beyond it. Their answers reach the client as the
// upstream sent them; a challenge still gets the cached token replaced, so the client's own retry goes through.
func (h *Handler) forward(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, req acquire.Request, tok tokencache.Token, spare []string) error {
	setAuthorization(r.Header, tok.AuthorizationHeader(), spare)
	body, replayable, err := bufferBody(r, h.retryBodyLimit)
	if err != nil {
		return err
	}
	if !replayable {
		return h.forwardOnce(w, r, next, req)
	}
	catcher := newChallengeCatcher(w)
	defer catcher.release()
	if err := next.ServeHTTP(catcher, r); err != nil || catcher.claims == "" {
		return err
	}
	// 4. The upstream challenged the token: get one with its claims, and send the request again.
	req.Claims = catcher.claims
	if tok, err = h.tokens.Token(r.Context(), req); err != nil {
		h.refuse(w, r, err)
		return nil
	}
	setAuthorization(r.Header, tok.AuthorizationHeader(), nil)
	body.rewind(r)
	catcher.reset(w)
	if err := next.ServeHTTP(catcher, r); err != nil || catcher.claims == "" {
		return err
	}
	h.refuse(w, r, &contract.ChallengedAgainError{Claims: catcher.claims})
	return nil
}

// forwardOnce sends a request that cannot be replayed. Should the upstream challenge its token, the challenge
// reaches the client as it is, and a token for the claims replaces the cached one, so the client's own retry does
// not meet the revoked token again. An upgrade goes through untouched: its connection is hijacked.
func (h *Handler) forwardOnce(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, req acquire.Request) error {
	if isUpgrade(r) {
		return next.ServeHTTP(w, r)
	}
	seen := &challengeCatcher{ResponseWriterWrapper: caddyhttp.ResponseWriterWrapper{ResponseWriter: w}, observeOnly: true}
	err := next.ServeHTTP(seen, r)
	if seen.claims != "" {
		req.Claims = seen.claims
		_, _ = h.tokens.Token(r.Context(), req) // a failure is met, and answered, by the client's next request
	}
	return err
}

// replayBody is a request body kept in memory so the request can be sent again.
type replayBody []byte

// rewind gives r its body again, from the start.
func (b replayBody) rewind(r *http.Request) {
	r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(b)), int64(len(b))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
	if len(b) == 0 {
		r.Body, r.GetBody = http.NoBody, nil
	}
}

// bufferBody reads r's body into memory when it is at most limit bytes, so r can be replayed. A larger body,
// one of unknown length that grows past limit, and an upgrade request are not replayable; what was read of such
// a body is put back in front of the rest, so the upstream still gets all of it.
func bufferBody(r *http.Request, limit int64) (replayBody, bool, error) {
	if isUpgrade(r) {
		return nil, false, nil
	}
	if noBody(r.Body) {
		return nil, true, nil
	}
	if r.ContentLength > limit {
		return nil, false, nil
	}
	var b bytes.Buffer
	if r.ContentLength > 0 {
		b.Grow(int(r.ContentLength) + bytes.MinRead) // one allocation; ReadFrom wants MinRead spare at EOF
	}
	if _, err := b.ReadFrom(io.LimitReader(r.Body, limit+1)); err != nil {
		return nil, false, bodyReadError(err)
	}
	buf := b.Bytes()
	if int64(len(buf)) > limit { // unknown length, beyond the bound: stream it on
		r.Body = readCloser{io.MultiReader(bytes.NewReader(buf), r.Body), r.Body}
		return nil, false, nil
	}
	_ = r.Body.Close()
	body := replayBody(buf)
	body.rewind(r)
	return body, true, nil
}

// noBody reports a request without a body, also when Caddy's server wrapped the empty body in an
// IdleTimeoutReader: reading that would only reset the connection's read deadline, a timer change per request. A
// body another handler put in place is read, whatever ContentLength says.
func noBody(b io.ReadCloser) bool {
	if idle, ok := b.(*caddyhttp.IdleTimeoutReader); ok {
		b = idle.ReadCloser
	}
	return b == nil || b == http.NoBody
}

// readCloser reads from one reader and closes another.
type readCloser struct {
	io.Reader
	io.Closer
}

// bodyReadError is the client's failure to send its body: 413 past a request_body limit, else 400.
func bodyReadError(err error) error {
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return caddyhttp.Error(http.StatusRequestEntityTooLarge, err)
	}
	return caddyhttp.Error(http.StatusBadRequest, fmt.Errorf("reading the request body: %w", err))
}

// isUpgrade reports a request that becomes another protocol (WebSocket, h2c; over HTTP/2, extended CONNECT).
// An Upgrade header counts without "Connection: upgrade" (not replaying is the safe side); "Connection: upgrade"
// without one names no protocol, and reverse_proxy forwards that request as any other.
func isUpgrade(r *http.Request) bool {
	up := r.Header["Upgrade"] // the canonical key read directly: Header.Get canonicalizes it on every request
	return r.Method == http.MethodConnect || (len(up) > 0 && up[0] != "")
}

// challengeCatcher passes the upstream's answer to the client unless it is a CAE claims challenge, which it
// swallows (headers undone, body discarded) and remembers, so the request can be retried; or, observeOnly, lets
// through and remembers.
type challengeCatcher struct {
	caddyhttp.ResponseWriterWrapper
	before      headerSnapshot // the response's headers before the upstream answered (CORS, Server, ...)
	observeOnly bool           // note a challenge's claims, but let it through (a request that cannot be replayed)
	claims      string         // the challenge's claims, once seen
	swallowed   bool           // the answer was a challenge, held back from the client
	wrote       bool           // the answer is going to the client
}

// catchers are reused: every forwarded request needs one, and nothing holds it once next.ServeHTTP has returned
// (reverse_proxy's copy and flushes end before it returns; upgrades are not wrapped).
var catchers = sync.Pool{New: func() any { return new(challengeCatcher) }}

// newChallengeCatcher wraps w; release returns the catcher once the request is done with it.
func newChallengeCatcher(w http.ResponseWriter) *challengeCatcher {
	c := catchers.Get().(*challengeCatcher)
	c.reset(w)
	return c
}

// reset makes c a fresh catcher for w, for a first or second attempt.
func (c *challengeCatcher) reset(w http.ResponseWriter) {
	*c = challengeCatcher{ResponseWriterWrapper: caddyhttp.ResponseWriterWrapper{ResponseWriter: w}}
	c.before.take(w.Header())
}

func (c *challengeCatcher) release() {
	*c = challengeCatcher{} // keeps no response writer, header or claims alive in the pool
	catchers.Put(c)
}

// headerSnapshot keeps a header's entries so they can be put back. The few a response has before the upstream
// answers are kept inline, which spares the request path a map per request; the value slices are shared, as
// handlers replace (Set) or append to (Add) them rather than write into them.
type headerSnapshot struct {
	small [4]struct {
		key    string
		values []string
	}
	n    int
	more http.Header // when there are more entries than small holds
}

func (s *headerSnapshot) take(h http.Header) {
	if len(h) > len(s.small) {
		s.more = h.Clone()
		return
	}
	for k, v := range h {
		s.small[s.n].key, s.small[s.n].values = k, v
		s.n++
	}
}

// restore makes h what it was when the snapshot was taken.
func (s *headerSnapshot) restore(h http.Header) {
	clear(h)
	for k, v := range s.more {
		h[k] = v
	}
	for _, e := range s.small[:s.n] {
		h[e.key] = e.values
	}
}

func (c *challengeCatcher) WriteHeader(status int) {
	switch {
	case c.wrote || c.swallowed:
		return
	case status >= 100 && status < 200: // informational: the final answer is still to come
		c.ResponseWriterWrapper.WriteHeader(status)
		return
	}
	if claims, ok := contract.UpstreamChallenge(status, c.Header()); ok {
		c.claims = claims
		if !c.observeOnly {
			c.swallowed = true
			c.before.restore(c.Header())
			return
		}
	}
	c.wrote = true
	c.ResponseWriterWrapper.WriteHeader(status)
}

func (c *challengeCatcher) Write(p []byte) (int, error) {
	c.WriteHeader(http.StatusOK) // a no-op once the status is known
	if c.swallowed {
		return len(p), nil
	}
	return c.ResponseWriterWrapper.Write(p)
}

// ReadFrom keeps io.Copy (reverse_proxy's body copy) going through Write's decision.
func (c *challengeCatcher) ReadFrom(r io.Reader) (int64, error) {
	c.WriteHeader(http.StatusOK)
	if c.swallowed {
		return io.Copy(io.Discard, r)
	}
	return c.ResponseWriterWrapper.ReadFrom(r)
}

// FlushError is what http.ResponseController calls: flushing a swallowed answer must not send anything.
func (c *challengeCatcher) FlushError() error {
	c.WriteHeader(http.StatusOK)
	if c.swallowed {
		return nil
	}
	return http.NewResponseController(c.ResponseWriterWrapper.ResponseWriter).Flush()
}

// Flush is for handlers that flush through http.Flusher.
func (c *challengeCatcher) Flush() { _ = c.FlushError() }

// Interface guards
var (
	_ http.Flusher                              = (*challengeCatcher)(nil)
	_ io.ReaderFrom                             = (*challengeCatcher)(nil)
	_ http.Pusher                               = (*challengeCatcher)(nil)
	_ interface{ Unwrap() http.ResponseWriter } = (*challengeCatcher)(nil)
)
