package contract

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

const graphClaims = `{"access_token":{"nbf":{"essential":true, "value":"1604106651"}}}`

func TestUpstreamChallenge(t *testing.T) {
	std := base64.StdEncoding.EncodeToString([]byte(graphClaims))
	for _, tc := range []struct {
		name   string
		status int
		values []string
		want   string
	}{
		{"graph's challenge", 401, []string{`Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", client_id="00000003-0000-0000-c000-000000000000", error="insufficient_claims", claims="` + std + `"`}, graphClaims},
		{"url-safe unpadded", 401, []string{`Bearer error="insufficient_claims", claims="` + base64.RawURLEncoding.EncodeToString([]byte(graphClaims)) + `"`}, graphClaims},
		{"second challenge of the header", 401, []string{`Basic realm="x", Bearer error=insufficient_claims, claims="` + std + `"`}, graphClaims},
		{"second header", 401, []string{`Basic realm="x"`, `Bearer error="insufficient_claims", claims="` + std + `"`}, graphClaims},
		{"not a 401", 403, []string{`Bearer error="insufficient_claims", claims="` + std + `"`}, ""},
		{"another error", 401, []string{`Bearer error="invalid_token", claims="` + std + `"`}, ""},
		{"no claims", 401, []string{`Bearer error="insufficient_claims"`}, ""},
		{"claims of another scheme", 401, []string{`PoP error="insufficient_claims", claims="` + std + `"`}, ""},
		{"not base64", 401, []string{`Bearer error="insufficient_claims", claims="!!!"`}, ""},
		{"not a JSON object", 401, []string{`Bearer error="insufficient_claims", claims="` + base64.StdEncoding.EncodeToString([]byte(`"x"`)) + `"`}, ""},
		{"too large", 401, []string{`Bearer error="insufficient_claims", claims="` + base64.StdEncoding.EncodeToString([]byte(`{"a":"`+strings.Repeat("x", 9000)+`"}`)) + `"`}, ""},
		{"unterminated", 401, []string{`Bearer error="insufficient_claims", claims="` + std}, graphClaims},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{"Www-Authenticate": tc.values}
			got, ok := UpstreamChallenge(tc.status, h)
			if got != tc.want || ok != (tc.want != "") {
				t.Fatalf("got %q, %v; want %q", got, ok, tc.want)
			}
		})
	}
}

func TestChallengedAgainIsInteractionRequiredWithTheClaims(t *testing.T) {
	err := fmt.Errorf("retry: %w", &ChallengedAgainError{Claims: graphClaims})
	p := Decide(err, []string{"https://graph.microsoft.com/User.Read"})
	if p.Status != 401 || p.Code != CodeInteractionRequired || p.Claims != graphClaims || p.LogMessage != "" {
		t.Fatalf("got %+v", p)
	}
	if !errors.As(err, new(*ChallengedAgainError)) {
		t.Fatal("not unwrapped")
	}
}

func FuzzBearerParams(f *testing.F) {
	f.Add(`Bearer realm="", error="insufficient_claims", claims="e30="`)
	f.Add(`Basic , Bearer a="\"", b=c,, ="`)
	f.Fuzz(func(t *testing.T, v string) {
		_ = bearerParams(v) // terminates, never panics
		_, _ = UpstreamChallenge(401, http.Header{"Www-Authenticate": {v}})
	})
}
