package entraemu_test

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/tokeninjector/caddy-token-injector/internal/dev/entraemu"
	"github.com/tokeninjector/caddy-token-injector/internal/dev/testenv"
)

// One RSA key for all test emulators keeps the suite fast; key generation is tested once.
var (
	testKeyOnce sync.Once
	testKey     *rsa.PrivateKey
)

func sharedKey(t testing.TB) *rsa.PrivateKey {
	testKeyOnce.Do(func() {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		testKey = k
	})
	return testKey
}

// newTestEmulator builds the default demo tenant with the shared key and a fake clock.
func newTestEmulator(t testing.TB, mutate ...func(*Config)) (*Emulator, *testenv.Clock) {
	t.Helper()
	clk := testenv.NewClock(time.Now().Truncate(time.Second))
	cfg := DefaultConfig()
	cfg.Now = clk.Now
	cfg.SigningKey = sharedKey(t)
	for _, m := range mutate {
		m(&cfg)
	}
	e, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	e.SetBaseURL("https://login.test")
	return e, clk
}

const (
	v2Token = "/" + DefaultTenantID + "/oauth2/v2.0/token"
	v1Token = "/" + DefaultTenantID + "/oauth2/token"
)

// result is a recorded HTTP answer with its JSON body decoded.
type result struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func serve(e http.Handler, req *http.Request) result {
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, req)
	res := result{status: rec.Code, header: rec.Header(), raw: rec.Body.String()}
	_ = json.Unmarshal(rec.Body.Bytes(), &res.body)
	return res
}

func postForm(e http.Handler, path string, form url.Values, hdr ...string) result {
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return serve(e, req)
}

func get(e http.Handler, path string, hdr ...string) result {
	req := httptest.NewRequest(http.MethodGet, path, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return serve(e, req)
}

// oboForm is a v2 OBO request by the add-in API for the given scope.
func oboForm(assertion, scope string) url.Values {
	return url.Values{
		"grant_type":          {"urn:ietf:params:oauth:grant-type:jwt-bearer"},
		"client_id":           {DefaultAddinClientID},
		"client_secret":       {DefaultAddinSecret},
		"assertion":           {assertion},
		"scope":               {scope},
		"requested_token_use": {"on_behalf_of"},
		"client_info":         {"1"},
	}
}

func mustMint(t testing.TB, e *Emulator, user string, o MintOptions) string {
	t.Helper()
	tok, err := e.MintAccessToken(user, o)
	if err != nil {
		t.Fatalf("MintAccessToken(%s): %v", user, err)
	}
	return tok
}

// decodeJWT returns a JWT's header and claims without verifying it.
func decodeJWT(t testing.TB, tok string) (map[string]any, map[string]any) {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %d parts", len(parts))
	}
	var h, c map[string]any
	for i, dst := range []*map[string]any{&h, &c} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatalf("JWT part %d: %v", i, err)
		}
		if err := json.Unmarshal(b, dst); err != nil {
			t.Fatalf("JWT part %d: %v", i, err)
		}
	}
	return h, c
}

var (
	guidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	descRE = regexp.MustCompile(`^AADSTS(\d+): (.+) Trace ID: ([0-9a-f-]{36}) Correlation ID: (\S+) Timestamp: (\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ)$`)
)

// checkError asserts an Entra error body field by field.
func checkError(t testing.TB, res result, status int, oauthErr string, code int, suberror string) {
	t.Helper()
	if res.status != status {
		t.Fatalf("status = %d, want %d; body %s", res.status, status, res.raw)
	}
	b := res.body
	if b["error"] != oauthErr {
		t.Errorf("error = %v, want %s", b["error"], oauthErr)
	}
	m := descRE.FindStringSubmatch(str(b["error_description"]))
	if m == nil {
		t.Fatalf("error_description %q has not Entra's shape", b["error_description"])
	}
	if m[1] != strconv.Itoa(code) {
		t.Errorf("description code = %s, want %d", m[1], code)
	}
	codes, _ := b["error_codes"].([]any)
	if len(codes) != 1 || codes[0] != float64(code) {
		t.Errorf("error_codes = %v, want [%d]", b["error_codes"], code)
	}
	if b["trace_id"] != m[3] || !guidRE.MatchString(str(b["trace_id"])) {
		t.Errorf("trace_id = %v (description says %s)", b["trace_id"], m[3])
	}
	if b["correlation_id"] != m[4] {
		t.Errorf("correlation_id = %v (description says %s)", b["correlation_id"], m[4])
	}
	if b["timestamp"] != m[5] {
		t.Errorf("timestamp = %v (description says %s)", b["timestamp"], m[5])
	}
	if want := "/error?code=" + strconv.Itoa(code); !strings.HasSuffix(str(b["error_uri"]), want) {
		t.Errorf("error_uri = %v, want suffix %s", b["error_uri"], want)
	}
	if str(b["suberror"]) != suberror {
		t.Errorf("suberror = %q, want %q", b["suberror"], suberror)
	}
	if ct := res.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type = %q", ct)
	}
}

func str(v any) string { s, _ := v.(string); return s }
