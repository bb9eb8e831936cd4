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
	"testing"
	"time"
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
	c, err := New(Config{AuthorityHost: srv.URL, Tenant: "tid", ClientID: "client", ClientSecret: "s3cret", HTTPClient: hc})
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
			tok, err := c.OnBehalfOf(ctx, "assertion", []string{"https://graph.microsoft.com/User.Read"})
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
	_, err := c.OnBehalfOf(context.Background(), "assertion", []string{"https://graph.microsoft.com/User.Read"})
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
	if _, err := c.OnBehalfOf(context.Background(), "a1", scopes); err != nil {
		t.Fatal(err)
	}
	conn := c.conn.Load()
	if err := c.Update(Config{ClientSecret: "rotated", HTTPClient: conn.http}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.OnBehalfOf(context.Background(), "a2", scopes); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != "s3cret" || got[1] != "rotated" {
		t.Fatalf("secrets sent: %q", got)
	}
}
