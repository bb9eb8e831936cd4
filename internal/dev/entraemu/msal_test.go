package entraemu_test

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	. "github.com/tokeninjector/caddy-token-injector/internal/dev/entraemu"
	"github.com/tokeninjector/caddy-token-injector/internal/dev/testenv"

	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/confidential"
	msalerrors "github.com/AzureAD/microsoft-authentication-library-for-go/apps/errors"
)

// TestMSALGo drives the real, unmodified MSAL Go confidential client against the emulator over
// HTTPS, with only the options the product sets: WithInstanceDiscovery(false) and WithHTTPClient.
func TestMSALGo(t *testing.T) {
	e, _ := newTestEmulator(t, func(c *Config) { c.Now = nil }) // MSAL checks expiry with the real clock
	srv, err := e.Start(ListenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: srv.CA.Pool()}}
	defer tr.CloseIdleConnections()
	httpClient := &http.Client{Transport: tr, Timeout: 10 * time.Second}

	cred, err := confidential.NewCredFromSecret(DefaultAddinSecret)
	if err != nil {
		t.Fatal(err)
	}
	app, err := confidential.New(srv.URL+"/"+DefaultTenantID, DefaultAddinClientID, cred,
		confidential.WithInstanceDiscovery(false), confidential.WithHTTPClient(httpClient))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	graph := []string{"https://graph.microsoft.com/User.Read"}
	adele := e.UserByKey("adele")

	t.Run("on-behalf-of, then from MSAL's cache", func(t *testing.T) {
		sso := mustMint(t, e, "adele", MintOptions{})
		res, err := app.AcquireTokenOnBehalfOf(ctx, sso, graph)
		if err != nil {
			t.Fatalf("AcquireTokenOnBehalfOf: %v", err)
		}
		_, c := decodeJWT(t, res.AccessToken)
		if c["aud"] != GraphURI || c["oid"] != adele.ObjectID || c["scp"] != "User.Read openid profile" {
			t.Errorf("claims = %v", c)
		}
		if d := time.Until(res.ExpiresOn); d < 55*time.Minute || d > 61*time.Minute {
			t.Errorf("ExpiresOn in %v", d)
		}
		if res.Metadata.TokenSource != confidential.TokenSourceIdentityProvider {
			t.Errorf("first call source = %v", res.Metadata.TokenSource)
		}
		again, err := app.AcquireTokenOnBehalfOf(ctx, sso, graph)
		if err != nil {
			t.Fatal(err)
		}
		if again.Metadata.TokenSource != confidential.TokenSourceCache || again.AccessToken != res.AccessToken {
			t.Errorf("second call was not served from MSAL's cache (source %v)", again.Metadata.TokenSource)
		}
		if n := e.Counters().ByGrant[GrantOBO]; n != 1 {
			t.Errorf("OBO requests = %d, want 1", n)
		}
	})

	t.Run("auth code with PKCE, then silent", func(t *testing.T) {
		const redirect = "http://localhost/callback"
		verifier := NewOpaque(32)
		sum := sha256.Sum256([]byte(verifier))
		authURL, err := app.AuthCodeURL(ctx, DefaultAddinClientID, redirect, append(graph, "openid", "offline_access", "profile"))
		if err != nil {
			t.Fatal(err)
		}
		authURL += "&" + url.Values{"state": {"st-1"}, "nonce": {"n-1"}, "code_challenge_method": {"S256"},
			"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}}.Encode()
		code := signInWithPicker(t, srv.CA, authURL, "adele", "st-1")
		res, err := app.AcquireTokenByAuthCode(ctx, code, redirect, graph, confidential.WithChallenge(verifier))
		if err != nil {
			t.Fatalf("AcquireTokenByAuthCode: %v", err)
		}
		if res.Account.PreferredUsername != adele.UPN || !strings.HasPrefix(res.Account.HomeAccountID, adele.ObjectID+".") {
			t.Errorf("account = %+v", res.Account)
		}
		_, id := decodeJWT(t, res.IDToken.RawToken)
		if id["nonce"] != "n-1" {
			t.Errorf("id_token nonce = %v", id["nonce"])
		}
		silent, err := app.AcquireTokenSilent(ctx, graph, confidential.WithSilentAccount(res.Account))
		if err != nil || silent.AccessToken != res.AccessToken {
			t.Errorf("silent: %v", err)
		}
		// The same code again: Entra's AADSTS54005, surfaced as a CallErr.
		_, err = app.AcquireTokenByAuthCode(ctx, code, redirect, graph, confidential.WithChallenge(verifier))
		body := callErrBody(t, err, 400)
		if body.Error != "invalid_grant" || len(body.ErrorCodes) != 1 || body.ErrorCodes[0] != 54005 {
			t.Errorf("reuse body = %+v", body)
		}
	})

	t.Run("MFA challenge is a parseable CallErr", func(t *testing.T) {
		e.SetFault("megan", Fault{Kind: FaultMFARequired})
		defer e.ClearFaults()
		_, err := app.AcquireTokenOnBehalfOf(ctx, mustMint(t, e, "megan", MintOptions{}), graph)
		body := callErrBody(t, err, 400)
		if body.Error != "invalid_grant" || body.Suberror != "basic_action" || body.ErrorCodes[0] != 50076 ||
			!strings.Contains(body.Claims, `"capolids"`) || body.CorrelationID == "" {
			t.Errorf("body = %+v", body)
		}
		var claims map[string]any
		if err := json.Unmarshal([]byte(body.Claims), &claims); err != nil {
			t.Errorf("claims is not a JSON string: %v", err)
		}
		// After an MFA sign-in the same policy is satisfied.
		if _, err := app.AcquireTokenOnBehalfOf(ctx, mustMint(t, e, "megan", MintOptions{MFA: true}), graph); err != nil {
			t.Errorf("MFA-satisfied assertion: %v", err)
		}
	})
}

type entraErrorBody struct {
	Error         string `json:"error"`
	Description   string `json:"error_description"`
	ErrorCodes    []int  `json:"error_codes"`
	Suberror      string `json:"suberror"`
	Claims        string `json:"claims"`
	CorrelationID string `json:"correlation_id"`
	TraceID       string `json:"trace_id"`
}

func callErrBody(t *testing.T, err error, status int) entraErrorBody {
	t.Helper()
	var ce msalerrors.CallErr
	if !errors.As(err, &ce) {
		t.Fatalf("error %v is not an errors.CallErr", err)
	}
	if ce.Resp.StatusCode != status {
		t.Fatalf("status = %d, want %d", ce.Resp.StatusCode, status)
	}
	var b entraErrorBody
	raw, _ := io.ReadAll(ce.Resp.Body)
	if err := json.Unmarshal(raw, &b); err != nil {
		t.Fatalf("body %q: %v", raw, err)
	}
	return b
}

// signInWithPicker plays the browser (testenv's, following no redirect): GET the authorize URL, POST the picker
// form for user, and return the code from the redirect.
func signInWithPicker(t *testing.T, ca *CA, authURL, user, state string) string {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}}
	defer tr.CloseIdleConnections()
	b := testenv.NewBrowser(testenv.BrowserOptions{Transport: tr, StopAt: func(*http.Request) bool { return true }})
	page, err := b.Navigate(authURL)
	if err != nil {
		t.Fatal(err)
	}
	if !testenv.OffersUser(page, user) {
		t.Fatalf("picker page %d: %.300s", page.Status, page.Body)
	}
	if page, err = b.PickUser(authURL, user); err != nil {
		t.Fatal(err)
	}
	loc, err := url.Parse(page.Header.Get("Location"))
	if page.Status != http.StatusFound || err != nil {
		t.Fatalf("picker POST: %d %q", page.Status, page.Header.Get("Location"))
	}
	q := loc.Query()
	if q.Get("state") != state || q.Get("code") == "" || q.Get("session_state") == "" {
		t.Fatalf("redirect query = %v", q)
	}
	return q.Get("code")
}
