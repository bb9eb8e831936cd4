package entra

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/confidential"
)

// fakeIdentityEndpoint is an App Service style managed identity endpoint whose tokens live for lifetime.
func fakeIdentityEndpoint(t *testing.T, lifetime time.Duration, status int) *atomic.Int64 {
	t.Helper()
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if r.Header.Get("X-IDENTITY-HEADER") != "header-secret" || r.URL.Query().Get("api-version") != "2019-08-01" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if status != http.StatusOK {
			w.WriteHeader(status)
			_, _ = w.Write([]byte(`{"statusCode":400,"message":"No User Assigned or Delegated Managed Identity found"}`))
			return
		}
		time.Sleep(50 * time.Millisecond) // long enough for concurrent callers to pile up
		_ = json.NewEncoder(w).Encode(map[string]string{
			"access_token": jwtFor("mi-" + strconv.FormatInt(calls.Load(), 10)), "token_type": "Bearer",
			"expires_on": strconv.FormatInt(time.Now().Add(lifetime).Unix(), 10), "resource": r.URL.Query().Get("resource"),
			"client_id": r.URL.Query().Get("client_id"),
		})
	}))
	t.Cleanup(srv.Close)
	t.Setenv("IDENTITY_ENDPOINT", srv.URL+"/msi/token")
	t.Setenv("IDENTITY_HEADER", "header-secret")
	return &calls
}

// One token serves every caller until 5 minutes before it expires; concurrent callers wait for one fetch.
func TestManagedIdentityTokenIsFetchedOnceAndRenewedBeforeExpiry(t *testing.T) {
	calls := fakeIdentityEndpoint(t, miRenewBefore+2*time.Second, http.StatusOK)
	// A client id of this test's own: MSAL keeps managed identity tokens in a process-wide cache.
	mi, err := newManagedIdentityAssertion("11111111-0000-4000-8000-000000000001", TokenExchangeAudience(""), credentialDeps{http: NewHTTPClient(nil, 5*time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	tokens := make([]string, 20)
	for i := range tokens {
		wg.Go(func() {
			tokens[i], _ = mi.assertion(context.Background(), confidential.AssertionRequestOptions{})
		})
	}
	wg.Wait()
	if n := calls.Load(); n != 1 || tokens[0] == "" || tokens[0] != tokens[19] {
		t.Fatalf("%d fetches for 20 concurrent callers (tokens %q, %q), want 1", n, tokens[0], tokens[19])
	}
	if tok, err := mi.assertion(context.Background(), confidential.AssertionRequestOptions{}); err != nil || tok != tokens[0] || calls.Load() != 1 {
		t.Fatalf("a later caller: %v, %d fetches", err, calls.Load())
	}
	time.Sleep(3 * time.Second) // now less than 5 minutes are left
	tok, err := mi.assertion(context.Background(), confidential.AssertionRequestOptions{})
	if err != nil || tok == tokens[0] || calls.Load() != 2 {
		t.Fatalf("near expiry: %v, %d fetches, same token %v; want a new token", err, calls.Load(), tok == tokens[0])
	}
}

// An identity the host does not have is the operator's to fix, and the answer's body is not quoted.
func TestManagedIdentityRefusalIsAMisconfiguration(t *testing.T) {
	fakeIdentityEndpoint(t, time.Hour, http.StatusBadRequest)
	mi, err := newManagedIdentityAssertion("22222222-0000-4000-8000-000000000000", TokenExchangeAudience(""), credentialDeps{http: NewHTTPClient(nil, 5*time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	_, err = mi.assertion(context.Background(), confidential.AssertionRequestOptions{})
	var mis *MisconfiguredError
	if !errors.As(err, &mis) || !strings.Contains(err.Error(), "HTTP 400") || !strings.Contains(err.Error(), "managed_identity") ||
		strings.Contains(err.Error(), "Delegated") {
		t.Fatalf("got %v", err)
	}
}
