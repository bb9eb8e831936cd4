package testenv

import (
	"io"
	"net"
	"sync"
	"testing"
)

// Gate is a TCP forwarder on a free loopback port that a test can close (every connection through it dropped,
// new ones refused) and open again: one client's network path to a server (Redis), so that it misses what
// others do meanwhile while the server itself stays up.
type Gate struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	open   bool
	conns  []net.Conn
}

// NewGate forwards to target (host:port) until t ends; it starts open.
func NewGate(t testing.TB, target string) *Gate {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &Gate{ln: ln, target: target, open: true}
	t.Cleanup(func() { _ = ln.Close(); g.Set(false) })
	go g.serve()
	return g
}

// Addr is the gate's host:port.
func (g *Gate) Addr() string { return g.ln.Addr().String() }

func (g *Gate) serve() {
	for {
		c, err := g.ln.Accept()
		if err != nil {
			return
		}
		g.mu.Lock()
		up, err := net.Dial("tcp", g.target)
		if !g.open || err != nil {
			g.mu.Unlock()
			_ = c.Close()
			if up != nil {
				_ = up.Close()
			}
			continue
		}
		g.conns = append(g.conns, c, up)
		g.mu.Unlock()
		go func() { _, _ = io.Copy(up, c); _ = up.Close() }()
		go func() { _, _ = io.Copy(c, up); _ = c.Close() }()
	}
}

// Set opens or closes the gate; closing drops every connection through it.
func (g *Gate) Set(open bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.open = open
	if !open {
		for _, c := range g.conns {
			_ = c.Close()
		}
		g.conns = nil
	}
}
