package entraemu_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/tokeninjector/caddy-token-injector/internal/dev/entraemu"
	"github.com/tokeninjector/caddy-token-injector/internal/dev/testenv"
)

func TestStartRefusesNonLoopback(t *testing.T) {
	e, _ := newTestEmulator(t)
	for _, addr := range []string{":0", "0.0.0.0:0", "[::]:0", "192.0.2.10:0", "example.com:443"} {
		if srv, err := e.Start(ListenOptions{Addr: addr}); err == nil {
			srv.Close()
			t.Errorf("Start(%q) listened", addr)
		} else if !strings.Contains(err.Error(), "loopback") {
			t.Errorf("Start(%q): %v", addr, err)
		}
	}
	if _, err := e.Start(ListenOptions{Addr: "no-port"}); err == nil {
		t.Error("bad address accepted")
	}
}

func TestStartServesHTTPS(t *testing.T) {
	e, _ := newTestEmulator(t)
	ca, err := NewCA()
	if err != nil {
		t.Fatal(err)
	}
	for _, addr := range []string{"", "localhost:0", "[::1]:0"} {
		t.Run(addr, func(t *testing.T) {
			srv, err := e.Start(ListenOptions{Addr: addr, CA: ca})
			if err != nil {
				if addr == "[::1]:0" {
					testenv.SkipUnlessAllowed(t, "no IPv6 loopback: %v", err)
				}
				t.Fatal(err)
			}
			defer srv.Close()
			if !strings.HasPrefix(srv.URL, "https://") || srv.CA != ca {
				t.Errorf("URL %q", srv.URL)
			}
			tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: srv.CA.Pool()}}
			defer tr.CloseIdleConnections()
			c := &http.Client{Transport: tr, Timeout: 5 * time.Second}
			resp, err := c.Get(srv.URL + "/" + DefaultTenantID + "/v2.0/.well-known/openid-configuration")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Errorf("status %d", resp.StatusCode)
			}
			// The issuer follows the server: MSAL needs scheme and host to match the authority.
			if got := e.IssuerV2(nil); got != srv.URL+"/"+DefaultTenantID+"/v2.0" {
				t.Errorf("issuer %q", got)
			}
			// An untrusting client fails: the CA is private.
			if _, err := http.Get(srv.URL + "/"); err == nil {
				t.Error("TLS accepted without trusting the CA")
			}
		})
	}
}

func TestCA(t *testing.T) {
	ca, err := NewCA()
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(ca.CertPEM())
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil || !cert.IsCA {
		t.Fatalf("CertPEM: %v", err)
	}
	cfg, err := ca.ServerTLSConfig("emu.test", "10.1.2.3")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(cfg.Certificates[0].Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"localhost", "127.0.0.1", "::1", "emu.test", "10.1.2.3"} {
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: h, Roots: ca.Pool()}); err != nil {
			t.Errorf("leaf not valid for %s: %v", h, err)
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "other.test", Roots: ca.Pool()}); err == nil {
		t.Error("leaf valid for an unlisted host")
	}
}

type strAddr string

func (a strAddr) Network() string { return "test" }
func (a strAddr) String() string  { return string(a) }

func TestIsLoopbackAddr(t *testing.T) {
	cases := []struct {
		addr net.Addr
		want bool
	}{
		{&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 80}, true},
		{&net.TCPAddr{IP: net.IPv4(127, 8, 9, 10)}, true},
		{&net.TCPAddr{IP: net.IPv6loopback}, true},
		{&net.TCPAddr{IP: net.IPv4(10, 0, 0, 1)}, false},
		{&net.TCPAddr{IP: net.IPv4zero}, false},
		{&net.TCPAddr{IP: net.IPv6unspecified}, false},
		{&net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}, true},
		{&net.IPAddr{IP: net.IPv4(8, 8, 8, 8)}, false},
		{&net.UnixAddr{Name: "/run/emu.sock", Net: "unix"}, true},
		{strAddr("127.0.0.1:443"), true},
		{strAddr("[::1]:443"), true},
		{strAddr("203.0.113.5:443"), false},
		{strAddr("localhost:443"), false}, // a name is not an address
		{nil, false},
	}
	for _, tc := range cases {
		name := "nil"
		if tc.addr != nil {
			name = tc.addr.String()
		}
		if got := IsLoopbackAddr(tc.addr); got != tc.want {
			t.Errorf("IsLoopbackAddr(%s) = %v, want %v", name, got, tc.want)
		}
	}
}

func TestLoopbackOnly(t *testing.T) {
	e, _ := newTestEmulator(t)
	h := LoopbackOnly(e)
	for _, tc := range []struct {
		local net.Addr
		want  int
	}{
		{&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 443}, 200},
		{&net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 443}, 403},
		{nil, 403},
	} {
		req := httptest.NewRequest("GET", "/"+DefaultTenantID+"/v2.0/.well-known/openid-configuration", nil)
		if tc.local != nil {
			req = req.WithContext(context.WithValue(req.Context(), http.LocalAddrContextKey, tc.local))
		}
		if got := serve(h, req).status; got != tc.want {
			t.Errorf("local %v: %d, want %d", tc.local, got, tc.want)
		}
	}
}

// TestConcurrentHammer runs token, discovery, control and fault traffic at once; run with -race.
func TestConcurrentHammer(t *testing.T) {
	e, _ := newTestEmulator(t)
	users := []string{"adele", "megan", "alex", "diego", "grady", "henrietta", "isaiah", "johanna"}
	assertions := map[string]string{}
	for _, u := range users {
		assertions[u] = mustMint(t, e, u, MintOptions{})
	}
	const workers, perWorker = 50, 24
	var ok, failed atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			u := users[w%len(users)]
			rt := ""
			for i := 0; i < perWorker; i++ {
				var res result
				switch i % 6 {
				case 0, 1:
					res = postForm(e, v2Token, oboForm(assertions[u], "https://graph.microsoft.com/User.Read offline_access"))
					if rt == "" {
						rt = str(res.body["refresh_token"])
					}
				case 2:
					if rt == "" {
						continue
					}
					res = postForm(e, v2Token, refreshForm(rt, "User.Read"))
					rt = str(res.body["refresh_token"])
				case 3:
					res = get(e, "/"+DefaultTenantID+"/v2.0/.well-known/openid-configuration")
				case 4:
					res = postForm(e, v2Token, ccForm(GraphURI+"/.default"))
				case 5:
					if w%10 == 0 {
						e.SetFault(u, Fault{Kind: FaultBlockedByCA, Count: 1})
					}
					_ = e.Counters()
					_ = e.Faults()
					res = get(e, "/_emulator/counters")
				}
				if res.status == http.StatusOK {
					ok.Add(1)
				} else {
					failed.Add(1)
				}
			}
		}(w)
	}
	wg.Wait()
	c := e.Counters()
	if c.TokenRequests+c.Discovery == 0 || ok.Load() == 0 {
		t.Fatalf("nothing happened: %+v", c)
	}
	// Only the injected one-shot faults may fail.
	if failed.Load() > int64(c.Faults) {
		t.Errorf("%d failures, only %d injected faults", failed.Load(), c.Faults)
	}
	if c.ByGrant[GrantOBO] != workers*perWorker/3 {
		t.Errorf("OBO count %d, want %d", c.ByGrant[GrantOBO], workers*perWorker/3)
	}
}
