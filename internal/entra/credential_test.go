package entra

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokeninjector/caddy-token-injector/internal/acquire"
	"github.com/tokeninjector/caddy-token-injector/internal/dev/testenv"
)

// assertionRecorder is a fake Entra that keeps the client_assertion (or client_secret) of each token request.
type assertionRecorder struct {
	mu   sync.Mutex
	seen []string
	srv  *httptest.Server
}

func newAssertionRecorder(t *testing.T) *assertionRecorder {
	t.Helper()
	rec := &assertionRecorder{}
	rec.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if strings.HasSuffix(r.URL.Path, "/.well-known/openid-configuration") {
			_ = json.NewEncoder(w).Encode(map[string]string{"issuer": rec.srv.URL + "/tid/v2.0",
				"authorization_endpoint": rec.srv.URL + "/tid/oauth2/v2.0/authorize", "token_endpoint": rec.srv.URL + "/tid/oauth2/v2.0/token"})
			return
		}
		_ = r.ParseForm()
		rec.mu.Lock()
		rec.seen = append(rec.seen, r.PostForm.Get("client_assertion")+r.PostForm.Get("client_secret"))
		rec.mu.Unlock()
		_, _ = w.Write([]byte(tokenBody("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln")))
	}))
	t.Cleanup(rec.srv.Close)
	return rec
}

func (rec *assertionRecorder) client(t *testing.T, cred Credential) (*Client, error) {
	t.Helper()
	hc := NewHTTPClient(rec.srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs, 5*time.Second)
	return New(Config{AuthorityHost: rec.srv.URL, Tenant: "tid", ClientID: "client", Credential: cred, HTTPClient: hc})
}

func (rec *assertionRecorder) last() string {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return rec.seen[len(rec.seen)-1]
}

// jwtFor is a JWT-shaped federated token naming n.
func jwtFor(n string) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"RS256"}`)) + "." + enc([]byte(`{"sub":"`+n+`"}`)) + ".c2ln"
}

// Kubelet swaps the ..data symlink to rotate a projected token: the next request sends the new token, and a file
// that disappears is a misconfiguration (502 with the fix), not a crash.
func TestAssertionFileFollowsRotation(t *testing.T) {
	rec := newAssertionRecorder(t)
	vol, err := testenv.NewProjectedToken(t.TempDir(), jwtFor("first"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := rec.client(t, Credential{AssertionFile: vol.Path()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i, want := range []string{"first", "second", "third"} {
		if i > 0 {
			if err := vol.Write(jwtFor(want)); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := c.OnBehalfOf(ctx, "user-assertion-"+want, acquire.Grant{Scopes: []string{"api://x/.default"}}); err != nil {
			t.Fatal(err)
		}
		if rec.last() != jwtFor(want) {
			t.Fatalf("after rotation %d the request carried another assertion", i)
		}
	}
	if err := os.RemoveAll(vol.Dir); err != nil {
		t.Fatal(err)
	}
	_, err = c.OnBehalfOf(ctx, "user-assertion-gone", acquire.Grant{Scopes: []string{"api://x/.default"}})
	var mis *MisconfiguredError
	if !errors.As(err, &mis) || !strings.Contains(err.Error(), "client_assertion_file") {
		t.Fatalf("a vanished token file: got %v, want a MisconfiguredError naming client_assertion_file", err)
	}
}

func TestCredentialLoadErrors(t *testing.T) {
	dir := t.TempDir()
	good, err := testenv.NewClientCertificate(dir, "good", time.Now().Add(24*time.Hour), false)
	if err != nil {
		t.Fatal(err)
	}
	other, err := testenv.NewClientCertificate(dir, "other", time.Now().Add(24*time.Hour), true)
	if err != nil {
		t.Fatal(err)
	}
	notJWT := filepath.Join(dir, "token")
	_ = os.WriteFile(notJWT, []byte("plain text\n"), 0o600)
	rec := newAssertionRecorder(t)
	tests := []struct {
		name string
		cred Credential
		want string
	}{
		{"none", Credential{}, "a credential is required"},
		{"two", Credential{Secret: "s", AssertionFile: notJWT}, "client_secret and client_assertion_file are both set"},
		{"certificate without a key", Credential{CertificateFile: good.CertFile}, "needs a certificate file and a key file"},
		{"key of another certificate", Credential{CertificateFile: good.CertFile, KeyFile: other.KeyFile}, "is not the key of the certificate"},
		{"key file is a certificate", Credential{CertificateFile: good.CertFile, KeyFile: good.CertFile}, "holds no unencrypted PKCS#8 or PKCS#1 private key"},
		{"token file missing", Credential{AssertionFile: filepath.Join(dir, "missing")}, "no such file"},
		{"token file not a JWT", Credential{AssertionFile: notJWT}, "does not hold a JWT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := rec.client(t, tt.cred)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// Both key encodings load; MSAL signs with them (x5t#S256 in the header), and x5c goes only when asked.
func TestCertificateCredential(t *testing.T) {
	dir := t.TempDir()
	rec := newAssertionRecorder(t)
	for _, pkcs1 := range []bool{false, true} {
		cert, err := testenv.NewClientCertificate(dir, "c"+map[bool]string{false: "8", true: "1"}[pkcs1], time.Now().Add(20*24*time.Hour), pkcs1)
		if err != nil {
			t.Fatal(err)
		}
		for _, x5c := range []bool{false, true} {
			c, err := rec.client(t, Credential{CertificateFile: cert.CertFile, KeyFile: cert.KeyFile, SendX5C: x5c})
			if err != nil {
				t.Fatalf("pkcs1=%v: %v", pkcs1, err)
			}
			if !c.CertificateNotAfter().Equal(cert.Cert.NotAfter) {
				t.Errorf("CertificateNotAfter %v, want %v", c.CertificateNotAfter(), cert.Cert.NotAfter)
			}
			if _, err := c.OnBehalfOf(context.Background(), "ua", acquire.Grant{Scopes: []string{"api://x/.default"}}); err != nil {
				t.Fatal(err)
			}
			header, _ := base64.RawURLEncoding.DecodeString(strings.Split(rec.last(), ".")[0])
			var h map[string]any
			_ = json.Unmarshal(header, &h)
			if h["x5t#S256"] == nil || (h["x5c"] != nil) != x5c {
				t.Errorf("pkcs1=%v send_x5c=%v: header %v", pkcs1, x5c, h)
			}
		}
	}
}

func TestTokenExchangeAudiencePerCloud(t *testing.T) {
	for host, want := range map[string]string{
		"https://login.microsoftonline.com": "api://AzureADTokenExchange",
		"https://login.microsoftonline.us":  "api://AzureADTokenExchangeUSGov",
		"https://login.chinacloudapi.cn":    "api://AzureADTokenExchangeChina",
		"login.chinacloudapi.cn":            "api://AzureADTokenExchangeChina",
		"https://127.0.0.1:8443":            "api://AzureADTokenExchange",
	} {
		if got := TokenExchangeAudience(host); got != want {
			t.Errorf("%s: %s, want %s", host, got, want)
		}
	}
}

// A reload (Update) reads the certificate files again: a renewed certificate written over the old files signs
// the next request.
func TestUpdateRereadsTheCertificate(t *testing.T) {
	dir := t.TempDir()
	rec := newAssertionRecorder(t)
	first, err := testenv.NewClientCertificate(dir, "cert", time.Now().Add(24*time.Hour), false)
	if err != nil {
		t.Fatal(err)
	}
	cred := Credential{CertificateFile: first.CertFile, KeyFile: first.KeyFile}
	c, err := rec.client(t, cred)
	if err != nil {
		t.Fatal(err)
	}
	renewed, err := testenv.NewClientCertificate(dir, "cert", time.Now().Add(48*time.Hour), false) // same paths
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Update(Config{Credential: cred, HTTPClient: c.conn.Load().http}); err != nil {
		t.Fatal(err)
	}
	if !c.CertificateNotAfter().Equal(renewed.Cert.NotAfter) {
		t.Fatalf("after the reload the client still uses the certificate expiring %v", c.CertificateNotAfter())
	}
	if _, err := c.OnBehalfOf(context.Background(), "ua", acquire.Grant{Scopes: []string{"api://x/.default"}}); err != nil {
		t.Fatal(err)
	}
	header, _ := base64.RawURLEncoding.DecodeString(strings.Split(rec.last(), ".")[0])
	sum := sha256.Sum256(renewed.Cert.Raw)
	if !strings.Contains(string(header), base64.StdEncoding.EncodeToString(sum[:])) &&
		!strings.Contains(string(header), base64.RawURLEncoding.EncodeToString(sum[:])) {
		t.Fatalf("the assertion is not signed by the renewed certificate: %s", header)
	}
}

// One PEM file with the certificate and its key (Key Vault's PEM export) serves as both paths.
func TestCertificateAndKeyInOneFile(t *testing.T) {
	dir := t.TempDir()
	c, err := testenv.NewClientCertificate(dir, "both", time.Now().Add(24*time.Hour), false)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, _ := os.ReadFile(c.CertFile)
	keyPEM, _ := os.ReadFile(c.KeyFile)
	both := filepath.Join(dir, "both.pem")
	if err := os.WriteFile(both, append(keyPEM, certPEM...), 0o600); err != nil {
		t.Fatal(err)
	}
	client, err := newAssertionRecorder(t).client(t, Credential{CertificateFile: both, KeyFile: both})
	if err != nil {
		t.Fatal(err)
	}
	if !client.CertificateNotAfter().Equal(c.Cert.NotAfter) {
		t.Fatal("the certificate was not loaded")
	}
}

// The token file's identity is checked before every token request: a stat, which must stay cheap next to the
// token request it precedes.
func BenchmarkAssertionFileUnchanged(b *testing.B) {
	vol, err := testenv.NewProjectedToken(b.TempDir(), jwtFor("bench"))
	if err != nil {
		b.Fatal(err)
	}
	f, err := newAssertionFile(vol.Path())
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := f.read(); err != nil {
			b.Fatal(err)
		}
	}
}
