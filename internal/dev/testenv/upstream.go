package testenv

import (
	"log"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Upstream is an HTTP server on a free loopback port, standing for the API behind Caddy. It counts every request
// and, when recording, keeps a copy of each request's headers.
type Upstream struct {
	Addr string // host:port to dial
	URL  string // http://host:port

	requests atomic.Int64
	record   bool
	mu       sync.Mutex
	seen     []http.Header
	srv      *http.Server
}

// UpstreamOptions configures StartUpstream.
type UpstreamOptions struct {
	// Record keeps every request's headers (see Seen); off for load tests, where it would grow without bound.
	Record bool
	// ErrorLog receives the server's errors; nil uses the log package's default logger.
	ErrorLog *log.Logger
}

// StartUpstream serves h on a free loopback port.
func StartUpstream(h http.Handler, o UpstreamOptions) (*Upstream, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	u := &Upstream{Addr: ln.Addr().String(), record: o.Record}
	u.URL = "http://" + u.Addr
	u.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.requests.Add(1)
		if u.record {
			u.mu.Lock()
			u.seen = append(u.seen, r.Header.Clone())
			u.mu.Unlock()
		}
		h.ServeHTTP(w, r)
	}), ReadHeaderTimeout: 10 * time.Second, ErrorLog: o.ErrorLog}
	go func() { _ = u.srv.Serve(ln) }()
	return u, nil
}

// Requests is how many requests reached the upstream so far.
func (u *Upstream) Requests() int64 { return u.requests.Load() }

// Seen returns the headers of every request received so far, oldest first (recording upstreams only).
func (u *Upstream) Seen() []http.Header {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]http.Header(nil), u.seen...)
}

// Close stops the server.
func (u *Upstream) Close() { _ = u.srv.Close() }

// FreeAddr returns a loopback address whose port was free a moment ago, for a listener Caddy will open.
func FreeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}
