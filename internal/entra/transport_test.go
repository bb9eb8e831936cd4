package entra

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestFetchDocumentClassifiesFailures(t *testing.T) {
	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/unknown-tenant":
			w.WriteHeader(400)
			_, _ = w.Write([]byte(`{"error":"invalid_tenant","error_codes":[90002],"error_description":"AADSTS90002: Tenant 'x' not found."}`))
		case "/missing":
			http.NotFound(w, r)
		case "/busy":
			w.Header().Set("Retry-After", "3")
			w.WriteHeader(503)
		case "/huge":
			_, _ = w.Write([]byte(strings.Repeat("x", 2048)))
		default:
			_, _ = w.Write([]byte(`{"ok":true}`))
		}
	}))
	defer tlsSrv.Close()
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()
	trusting := tlsSrv.Client()
	system := NewHTTPClient(nil, time.Second) // does not trust the test server's certificate

	tests := []struct {
		name   string
		client *http.Client
		url    string
		want   string // "ok", "unavailable" or "misconfigured"
		fix    string
	}{
		{"ok", trusting, tlsSrv.URL + "/doc", "ok", ""},
		{"unknown tenant", trusting, tlsSrv.URL + "/unknown-tenant", "misconfigured", "check tenant"},
		{"404", trusting, tlsSrv.URL + "/missing", "misconfigured", "check authority_host"},
		{"5xx", trusting, tlsSrv.URL + "/busy", "unavailable", ""},
		{"too large", trusting, tlsSrv.URL + "/huge", "misconfigured", ""},
		{"untrusted certificate", system, tlsSrv.URL + "/doc", "misconfigured", "tls_trust_pool"},
		{"connection refused", trusting, closedURL + "/doc", "unavailable", ""},
		{"no such host", trusting, "https://no-such-host.invalid/doc", "misconfigured", "check authority_host"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, err := FetchDocument(ctx, tt.client, "fetching signing keys", tt.url, 1024)
			var un *UnavailableError
			var mis *MisconfiguredError
			switch {
			case tt.want == "ok" && err != nil, tt.want == "unavailable" && !errors.As(err, &un),
				tt.want == "misconfigured" && !errors.As(err, &mis):
				t.Fatalf("got %T %v, want %s", err, err, tt.want)
			}
			if mis != nil && !strings.Contains(mis.Fix, tt.fix) {
				t.Fatalf("fix %q lacks %q", mis.Fix, tt.fix)
			}
			if err != nil && !strings.Contains(err.Error(), "fetching signing keys") {
				t.Fatalf("the error does not name the call: %v", err)
			}
		})
	}
}

func TestTimeoutIsUnavailableWithTimeout(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := FetchDocument(ctx, srv.Client(), "fetching signing keys", srv.URL, 1024)
	var un *UnavailableError
	if !errors.As(err, &un) || !un.Timeout {
		t.Fatalf("got %v", err)
	}
}

func TestDiscoveryIsFetchedOncePerDocument(t *testing.T) {
	var fetches atomic.Int32
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		<-release
		_, _ = w.Write([]byte(`{"issuer":"x"}`))
	}))
	defer srv.Close()
	c := NewHTTPClient(nil, 5*time.Second)
	var wg sync.WaitGroup
	for i := range 14 {
		u := srv.URL + "/tid/v2.0/.well-known/openid-configuration"
		if i%2 == 0 {
			u += "?" // as MSAL asks for it
		}
		wg.Go(func() {
			resp, err := c.Get(u)
			if err != nil || resp.StatusCode != 200 {
				t.Errorf("GET: %v", err)
				return
			}
			resp.Body.Close()
		})
	}
	time.Sleep(100 * time.Millisecond) // let every caller join the flight
	close(release)
	wg.Wait()
	if n := fetches.Load(); n != 1 {
		t.Fatalf("14 concurrent cold requests made %d fetches, want 1", n)
	}
}
