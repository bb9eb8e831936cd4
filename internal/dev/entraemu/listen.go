package entraemu

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"time"
)

// ListenOptions configures Start.
type ListenOptions struct {
	Addr             string      // default 127.0.0.1:0 (a free port)
	CA               *CA         // default: a new CA
	AllowNonLoopback bool        // the emulator mints tokens: refuse other interfaces unless set
	ErrorLog         *log.Logger // server errors (TLS handshakes, resets); default discarded
}

// Server is a running HTTPS emulator.
type Server struct {
	URL string // https://127.0.0.1:port, the base of the authority (URL + "/" + tenant id)
	CA  *CA    // trust this CA (CA.Pool) in clients

	srv *http.Server
	ln  net.Listener
}

// Start serves the emulator over HTTPS and sets its base URL to Server.URL. It refuses a
// non-loopback address unless AllowNonLoopback is set: it mints tokens.
func (e *Emulator) Start(o ListenOptions) (*Server, error) {
	addr := o.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("entraemu: bad listen address %q: %w", addr, err)
	}
	if !o.AllowNonLoopback && !isLoopbackHost(host) {
		return nil, fmt.Errorf("entraemu: refusing to listen on non-loopback address %q: the emulator mints tokens (set AllowNonLoopback to override)", addr)
	}
	ca := o.CA
	if ca == nil {
		if ca, err = NewCA(); err != nil {
			return nil, err
		}
	}
	extra := []string{}
	if host != "" && !isLoopbackHost(host) {
		extra = append(extra, host)
	}
	tlsCfg, err := ca.ServerTLSConfig(extra...)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	if !o.AllowNonLoopback && !IsLoopbackAddr(ln.Addr()) { // e.g. "localhost" resolved oddly
		ln.Close()
		return nil, fmt.Errorf("entraemu: listener %s is not on loopback", ln.Addr())
	}
	errLog := o.ErrorLog
	if errLog == nil {
		errLog = log.New(io.Discard, "", 0)
	}
	s := &Server{CA: ca, ln: ln, URL: "https://" + ln.Addr().String()}
	s.srv = &http.Server{
		Handler:           e,
		TLSConfig:         tlsCfg,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          errLog,
	}
	e.SetBaseURL(s.URL)
	go func() { _ = s.srv.ServeTLS(ln, "", "") }()
	return s, nil
}

// Close stops the server, waiting briefly for in-flight requests.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		return s.srv.Close()
	}
	return err
}

func isLoopbackHost(h string) bool {
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// LoopbackOnly wraps h so that requests which arrived on a non-loopback listener get 403: for
// hosting the emulator inside a server (such as Caddy) that may also listen elsewhere.
func LoopbackOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		la, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
		if !IsLoopbackAddr(la) {
			http.Error(w, "entraemu only answers on loopback: it mints tokens", http.StatusForbidden)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// IsLoopbackAddr reports whether a is a loopback address (or a Unix socket, which is local by
// construction). The Caddy-hosted variant uses it to refuse requests arriving on other listeners.
func IsLoopbackAddr(a net.Addr) bool {
	switch v := a.(type) {
	case nil:
		return false
	case *net.TCPAddr:
		return v.IP.IsLoopback()
	case *net.UDPAddr:
		return v.IP.IsLoopback()
	case *net.IPAddr:
		return v.IP.IsLoopback()
	case *net.UnixAddr:
		return true
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		host = a.String()
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
