package entra

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokeninjector/caddy-token-injector/internal/acquire"
)

// fakeEntra serves the v2 discovery document and a token endpoint whose answer the test sets: enough for MSAL Go
// to run an On-Behalf-Of request against it.
func fakeEntra(t *testing.T, token func(w http.ResponseWriter)) *Client {
	return fakeEntraWith(t, func(w http.ResponseWriter, _ *http.Request) { token(w) })
}

func fakeEntraWith(t *testing.T, token func(w http.ResponseWriter, r *http.Request)) *Client {
	t.Helper()
	var srv *httptest.Server
	srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/.well-known/openid-configuration") {
			_ = json.NewEncoder(w).Encode(map[string]string{"issuer": srv.URL + "/tid/v2.0",
				"authorization_endpoint": srv.URL + "/tid/oauth2/v2.0/authorize", "token_endpoint": srv.URL + "/tid/oauth2/v2.0/token"})
			return
		}
		w.Header().Set("Content-Type", "application/json")
		token(w, r)
	}))
	t.Cleanup(srv.Close)
	hc := NewHTTPClient(srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs, 5*time.Second)
	c, err := New(Config{AuthorityHost: srv.URL, Tenant: "tid", ClientID: "client", Credential: Credential{Secret: "s3cret"}, HTTPClient: hc})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func tokenBody(accessToken string) string {
	b, _ := json.Marshal(map[string]any{"token_type": "Bearer", "expires_in": 3600, "access_token": accessToken,
		"client_info": base64.RawURLEncoding.EncodeToString([]byte(`{"uid":"oid","utid":"tid"}`))})
	return string(b)
}

func TestIdentityProviderAnswersAreBounded(t *testing.T) {
	jwtish := "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"
	tests := []struct {
		name string
		body string
		want string // "" ok, else a word of the error
	}{
		{"a token", tokenBody(jwtish), ""},
		{"a 2 MiB answer", tokenBody(strings.Repeat("a", 2<<20)), "larger than 1 MiB"},
		{"a 100 KiB token", tokenBody(strings.Repeat("a", 100<<10)), "over the 65536-byte limit"},
		{"a token with CR LF", tokenBody(jwtish + "\r\nX-Injected: 1"), "outside the token character set"},
		{"a token with a space", tokenBody("abc def"), "outside the token character set"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := fakeEntra(t, func(w http.ResponseWriter) { fmt.Fprint(w, tt.body) })
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			start := time.Now()
			tok, err := c.OnBehalfOf(ctx, "assertion", acquire.Grant{Scopes: []string{"https://graph.microsoft.com/User.Read"}})
			if tt.want == "" {
				if err != nil || tok.AccessToken != jwtish {
					t.Fatalf("got %q, %v", tok.AccessToken, err)
				}
				return
			}
			var u *UnexpectedError
			if !errors.As(err, &u) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %T %v, want an UnexpectedError saying %q", err, err, tt.want)
			}
			if time.Since(start) > 3*time.Second {
				t.Fatal("refused only after the timeout; a bad answer must fail at once")
			}
		})
	}
}

// MSAL Go's decode errors quote the body; none of it may reach an error text, which is what gets logged.
func TestUnreadableAnswerTextHoldsNoToken(t *testing.T) {
	const secretToken = "eyJhbGciOiJSUzI1NiJ9.c2VjcmV0LWFjY2Vzcy10b2tlbg.c2ln"
	const refresh = "0.AAAA-secret-refresh-token"
	c := fakeEntra(t, func(w http.ResponseWriter) {
		fmt.Fprintf(w, `{"token_type":"Bearer","expires_in":"soon","access_token":%q,"refresh_token":%q`, secretToken, refresh)
	})
	_, err := c.OnBehalfOf(context.Background(), "assertion", acquire.Grant{Scopes: []string{"https://graph.microsoft.com/User.Read"}})
	if err == nil {
		t.Fatal("a malformed answer was accepted")
	}
	for _, secret := range []string{secretToken, "c2VjcmV0LWFjY2Vzcy10b2tlbg", refresh, "s3cret"} {
		if strings.Contains(err.Error(), secret) || strings.Contains(fmt.Sprintf("%+v", err), secret) {
			t.Fatalf("the error text leaks %q: %v", secret, err)
		}
	}
}

func TestUpdateSwitchesTheSecret(t *testing.T) {
	var got []string
	c := fakeEntraWith(t, func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.PostFormValue("client_secret"))
		fmt.Fprint(w, tokenBody("eyJ0.eyJ0.c2ln"))
	})
	scopes := []string{"https://graph.microsoft.com/User.Read"}
	if _, err := c.OnBehalfOf(context.Background(), "a1", acquire.Grant{Scopes: scopes}); err != nil {
		t.Fatal(err)
	}
	conn := c.conn.Load()
	if err := c.Update(Config{Credential: Credential{Secret: "rotated"}, HTTPClient: conn.http}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.OnBehalfOf(context.Background(), "a2", acquire.Grant{Scopes: scopes}); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != "s3cret" || got[1] != "rotated" {
		t.Fatalf("secrets sent: %q", got)
	}
}

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
