package entraemu_test

import (
	"context"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/confidential"
	msalerrors "github.com/AzureAD/microsoft-authentication-library-for-go/apps/errors"
	jose "github.com/go-jose/go-jose/v4"

	. "github.com/tokeninjector/caddy-token-injector/internal/dev/entraemu"
	"github.com/tokeninjector/caddy-token-injector/internal/dev/testenv"
)

// credentialRig is an emulator over HTTPS whose add-in app has a registered certificate, plus a certificate the
// app does not have, and a client for MSAL.
type credentialRig struct {
	e          *Emulator
	srv        *Server
	http       *http.Client
	registered *testenv.ClientCertificate
	stranger   *testenv.ClientCertificate
}

func newCredentialRig(t *testing.T) *credentialRig {
	t.Helper()
	dir := t.TempDir()
	registered, err := testenv.NewClientCertificate(dir, "registered", time.Now().Add(90*24*time.Hour), false)
	if err != nil {
		t.Fatal(err)
	}
	stranger, err := testenv.NewClientCertificate(dir, "stranger", time.Now().Add(90*24*time.Hour), true)
	if err != nil {
		t.Fatal(err)
	}
	e, _ := newTestEmulator(t, func(c *Config) {
		c.Now = nil // MSAL checks expiry with the real clock
		for i := range c.Apps {
			if c.Apps[i].ClientID == DefaultAddinClientID {
				c.Apps[i].Certificates = append(c.Apps[i].Certificates, registered.Cert)
			}
		}
		c.ManagedIdentities = []ManagedIdentity{{ClientID: "a11ce000-0000-4000-8000-00000000000a",
			ObjectID: "0b1ec700-0000-4000-8000-00000000000a", SystemAssigned: true}}
	})
	srv, err := e.Start(ListenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: srv.CA.Pool()}}
	t.Cleanup(func() { tr.CloseIdleConnections(); srv.Close() })
	return &credentialRig{e: e, srv: srv, http: &http.Client{Transport: tr, Timeout: 10 * time.Second},
		registered: registered, stranger: stranger}
}

func (r *credentialRig) msal(t *testing.T, cred confidential.Credential, opts ...confidential.Option) confidential.Client {
	t.Helper()
	opts = append(opts, confidential.WithInstanceDiscovery(false), confidential.WithHTTPClient(r.http))
	app, err := confidential.New(r.srv.URL+"/"+DefaultTenantID, DefaultAddinClientID, cred, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return app
}

func certCredential(t *testing.T, c *testenv.ClientCertificate) confidential.Credential {
	t.Helper()
	certPEM := readFile(t, c.CertFile)
	certs, key, err := confidential.CertFromPEM(append(certPEM, readFile(t, c.KeyFile)...), "")
	if err != nil {
		t.Fatal(err)
	}
	cred, err := confidential.NewCredFromCert(certs, key)
	if err != nil {
		t.Fatal(err)
	}
	return cred
}

// entraError returns the AADSTS code and OAuth error of an MSAL failure.
func entraError(t *testing.T, err error) (int, string, string) {
	t.Helper()
	var call msalerrors.CallErr
	if !errors.As(err, &call) || call.Resp == nil {
		t.Fatalf("want an error answer from the token endpoint, got %v", err)
	}
	body, _ := io.ReadAll(call.Resp.Body)
	var b struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
		Codes       []int  `json:"error_codes"`
	}
	if json.Unmarshal(body, &b) != nil || len(b.Codes) == 0 {
		t.Fatalf("not an Entra error body: %s", body)
	}
	return b.Codes[0], b.Error, b.Description
}

var graphScopes = []string{"https://graph.microsoft.com/User.Read"}

func TestCertificateAssertions(t *testing.T) {
	r := newCredentialRig(t)
	ctx := context.Background()

	t.Run("registered certificate: OBO works and no secret was sent", func(t *testing.T) {
		res, err := r.msal(t, certCredential(t, r.registered)).AcquireTokenOnBehalfOf(ctx, mustMint(t, r.e, "adele", MintOptions{}), graphScopes)
		if err != nil {
			t.Fatal(err)
		}
		_, c := decodeJWT(t, res.AccessToken)
		if c["appidacr"] != "2" && c["azpacr"] != "2" {
			t.Errorf("a certificate-authenticated token has appidacr/azpacr 2: %v", c)
		}
		seen := r.e.ClientCredentials(DefaultAddinClientID)
		if seen.Certificate != 1 || seen.Secret != 0 || seen.X5C != 0 {
			t.Errorf("seen %+v, want one certificate assertion, no secret, no x5c", seen)
		}
		var viaAPI ClientCredentialsSeen
		getJSON(t, r.http, r.srv.URL+"/_emulator/credentials/"+DefaultAddinClientID, &viaAPI)
		if viaAPI.Certificate != 1 || viaAPI.Secret != 0 {
			t.Errorf("the control API says %+v", viaAPI)
		}
	})
	t.Run("x5c is sent when asked", func(t *testing.T) {
		before := r.e.ClientCredentials(DefaultAddinClientID).X5C
		app := r.msal(t, certCredential(t, r.registered), confidential.WithX5C())
		if _, err := app.AcquireTokenOnBehalfOf(ctx, mustMint(t, r.e, "alex", MintOptions{}), graphScopes); err != nil {
			t.Fatal(err)
		}
		if got := r.e.ClientCredentials(DefaultAddinClientID).X5C; got != before+1 {
			t.Errorf("x5c seen %d times, want %d", got, before+1)
		}
	})
	t.Run("a certificate the app does not have is AADSTS700027", func(t *testing.T) {
		_, err := r.msal(t, certCredential(t, r.stranger)).AcquireTokenOnBehalfOf(ctx, mustMint(t, r.e, "adele", MintOptions{}), graphScopes)
		code, oauth, desc := entraError(t, err)
		if code != 700027 || oauth != "invalid_client" || !strings.Contains(desc, "is not registered on application") {
			t.Fatalf("got %d %s %q", code, oauth, desc)
		}
	})
}

// handAssertion signs a certificate assertion with key, as a client library would, with the given claims.
func handAssertion(t *testing.T, key *rsa.PrivateKey, x5t string, claims map[string]any) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.PS256, Key: key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("x5t#S256", x5t))
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(claims)
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := jws.CompactSerialize()
	return s
}

func TestCertificateAssertionRules(t *testing.T) {
	r := newCredentialRig(t)
	key := loadKey(t, r.registered.KeyFile)
	thumb := thumbprintS256(r.registered.Cert.Raw)
	endpoint := r.srv.URL + "/" + DefaultTenantID + "/oauth2/v2.0/token"
	now := time.Now()
	claims := func(jti string, exp time.Time, aud string) map[string]any {
		return map[string]any{"iss": DefaultAddinClientID, "sub": DefaultAddinClientID, "aud": aud, "jti": jti,
			"nbf": now.Add(-time.Minute).Unix(), "exp": exp.Unix()}
	}
	post := func(assertion string) result {
		form := url.Values{"grant_type": {"client_credentials"}, "client_id": {DefaultAddinClientID},
			"scope": {"https://graph.microsoft.com/.default"}, "client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
			"client_assertion": {assertion}}
		return postForm(r.e, v2Token, form)
	}
	r.e.SetBaseURL(r.srv.URL)
	ok := handAssertion(t, key, thumb, claims("jti-1", now.Add(10*time.Minute), endpoint))
	if res := post(ok); res.status != http.StatusOK {
		t.Fatalf("a good assertion: %d %s", res.status, res.raw)
	}
	tests := []struct {
		name      string
		assertion string
		code      float64
	}{
		{"a jti used twice", ok, 50027},
		{"expired", handAssertion(t, key, thumb, claims("jti-2", now.Add(-10*time.Minute), endpoint)), 700024},
		{"for another token endpoint", handAssertion(t, key, thumb, claims("jti-3", now.Add(10*time.Minute), "https://login.example/x/oauth2/v2.0/token")), 50027},
		{"signed by another key", handAssertion(t, loadKey(t, r.stranger.KeyFile), thumb, claims("jti-4", now.Add(10*time.Minute), endpoint)), 700027},
		{"not a JWT", "not-a-jwt", 50027},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := post(tt.assertion)
			if res.status < 400 || codeOf(res) != tt.code {
				t.Fatalf("got %d %s, want AADSTS%v", res.status, res.raw, tt.code)
			}
		})
	}
}

func codeOf(res result) float64 {
	codes, _ := res.body["error_codes"].([]any)
	if len(codes) == 0 {
		return 0
	}
	f, _ := codes[0].(float64)
	return f
}

func TestFederatedCredentials(t *testing.T) {
	r := newCredentialRig(t)
	ctx := context.Background()
	aks, err := r.e.WorkloadIssuer("aks")
	if err != nil {
		t.Fatal(err)
	}
	r.e.AddFederatedCredential(DefaultAddinClientID, FederatedCredential{Issuer: aks.URL(), Subject: "system:serviceaccount:addin:proxy"})
	now := time.Now()
	sa := func(namespace, name string, exp time.Time) string {
		tok, err := aks.ServiceAccountToken(namespace, name, DefaultTokenExchangeAudience, now.Add(-time.Minute), exp)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	obo := func(assertion string) error {
		cred := confidential.NewCredFromAssertionCallback(func(context.Context, confidential.AssertionRequestOptions) (string, error) {
			return assertion, nil
		})
		_, err := r.msal(t, cred).AcquireTokenOnBehalfOf(ctx, mustMint(t, r.e, "adele", MintOptions{Lifetime: time.Hour}), graphScopes)
		return err
	}
	t.Run("the service account's token works", func(t *testing.T) {
		if err := obo(sa("addin", "proxy", now.Add(time.Hour))); err != nil {
			t.Fatal(err)
		}
		seen := r.e.ClientCredentials(DefaultAddinClientID)
		if seen.Federated != 1 || seen.FederatedIssuers[aks.URL()] != 1 || seen.Secret != 0 {
			t.Errorf("seen %+v", seen)
		}
	})
	t.Run("the issuer publishes its keys", func(t *testing.T) {
		resp, err := r.http.Get(aks.URL() + "/.well-known/openid-configuration")
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Issuer  string `json:"issuer"`
			JWKSURI string `json:"jwks_uri"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&doc)
		resp.Body.Close()
		var set jose.JSONWebKeySet
		getJSON(t, r.http, doc.JWKSURI, &set)
		if doc.Issuer != aks.URL() || len(set.Keys) != 1 {
			t.Fatalf("discovery %+v, keys %d", doc, len(set.Keys))
		}
	})
	for _, tt := range []struct {
		name      string
		assertion string
		code      int
	}{
		{"another service account is AADSTS70021", sa("addin", "intruder", now.Add(time.Hour)), 70021},
		{"an expired token is AADSTS700024", sa("addin", "proxy", now.Add(-10*time.Minute)), 700024},
		{"a forged signature is AADSTS700027", forge(t, sa("addin", "proxy", now.Add(time.Hour))), 700027},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if code, _, desc := entraError(t, obo(tt.assertion)); code != tt.code {
				t.Fatalf("got AADSTS%d %q, want AADSTS%d", code, desc, tt.code)
			}
		})
	}
}

func TestManagedIdentityEndpoint(t *testing.T) {
	r := newCredentialRig(t)
	endpoint, header := r.e.ManagedIdentityEndpoint()
	get := func(query, hdr string) (int, map[string]any) {
		req, _ := http.NewRequest(http.MethodGet, endpoint+"?"+query, nil)
		if hdr != "" {
			req.Header.Set("X-IDENTITY-HEADER", hdr)
		}
		resp, err := r.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body
	}
	q := "api-version=2019-08-01&resource=" + url.QueryEscape(DefaultTokenExchangeAudience)
	status, body := get(q, header)
	if status != http.StatusOK || body["client_id"] != "a11ce000-0000-4000-8000-00000000000a" {
		t.Fatalf("%d %v", status, body)
	}
	_, c := decodeJWT(t, body["access_token"].(string))
	if c["aud"] != DefaultTokenExchangeAudience || c["sub"] != "0b1ec700-0000-4000-8000-00000000000a" || c["iss"] != r.e.Issuer() {
		t.Errorf("claims %v", c)
	}
	if n := r.e.ManagedIdentityTokens("a11ce000-0000-4000-8000-00000000000a"); n != 1 {
		t.Errorf("%d tokens counted, want 1", n)
	}
	for _, tt := range []struct {
		name, query, header string
		status              int
	}{
		{"no header", q, "", http.StatusBadRequest},
		{"wrong header", q, "wrong", http.StatusUnauthorized},
		{"old api-version", strings.Replace(q, "2019-08-01", "2017-09-01", 1), header, http.StatusBadRequest},
		{"unknown user-assigned identity", q + "&client_id=00000000-0000-4000-8000-000000000000", header, http.StatusBadRequest},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if status, body := get(tt.query, tt.header); status != tt.status || body["access_token"] != nil {
				t.Fatalf("%d %v, want %d", status, body, tt.status)
			}
		})
	}
}

func readFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func loadKey(t *testing.T, p string) *rsa.PrivateKey {
	t.Helper()
	block, _ := pem.Decode(readFile(t, p))
	if block == nil {
		t.Fatalf("%s holds no PEM", p)
	}
	if k, err := x509.ParsePKCS1PrivateKey(block.Bytes); err == nil {
		return k
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return k.(*rsa.PrivateKey)
}

func thumbprintS256(der []byte) string {
	sum := sha256.Sum256(der)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// forge changes a claim of a signed token and keeps its signature.
func forge(t *testing.T, tok string) string {
	t.Helper()
	parts := strings.Split(tok, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var c map[string]any
	_ = json.Unmarshal(payload, &c)
	c["exp"] = time.Now().Add(48 * time.Hour).Unix()
	payload, _ = json.Marshal(c)
	return parts[0] + "." + base64.RawURLEncoding.EncodeToString(payload) + "." + parts[2]
}

func getJSON(t *testing.T, c *http.Client, u string, v any) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}
