package caddymodule

import (
	"cmp"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
)

func TestDurationJSON(t *testing.T) {
	t.Setenv("TI_TEST_DURATION", "90s")
	tests := []struct {
		json     string
		want     time.Duration // resolved, with a default of 1m
		wantErr  string
		marshals string // "" means as given
	}{
		{json: `3000000000`, want: 3 * time.Second}, // nanoseconds, as caddy.Duration takes them
		{json: `"10s"`, want: 10 * time.Second},
		{json: `"1d"`, want: 24 * time.Hour},
		{json: `"{env.TI_TEST_DURATION}"`, want: 90 * time.Second},
		{json: `"{env.TI_TEST_UNSET}"`, want: time.Minute},
		{json: `0`, want: time.Minute},
		{json: `null`, want: time.Minute, marshals: `""`},
		{json: `-5`, wantErr: "f: -5 is not a positive duration"},
		{json: `"-5s"`, wantErr: `f: "-5s" is not a positive duration`},
		{json: `"soon"`, wantErr: `f: "soon" is not a duration`},
		{json: `1.5`, wantErr: "a duration is a string"},
		{json: `true`, wantErr: "a duration is a string"},
	}
	for _, tt := range tests {
		t.Run(tt.json, func(t *testing.T) {
			var d Duration
			err := json.Unmarshal([]byte(tt.json), &d)
			var got time.Duration
			if err == nil {
				got, err = d.resolve(caddy.NewReplacer(), "f", time.Minute)
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("resolved to %v, %v; want %v", got, err, tt.want)
			}
			out, _ := json.Marshal(d)
			if want := cmp.Or(tt.marshals, tt.json); string(out) != want {
				t.Fatalf("marshals as %s, want %s", out, want)
			}
		})
	}
}

func TestNumberJSON(t *testing.T) {
	t.Setenv("TI_TEST_NUMBER", "5000")
	t.Setenv("TI_TEST_ZERO", "0")
	tests := []struct {
		json    string
		want    int // resolved, with a default of 100
		wantErr string
	}{
		{json: `20000`, want: 20000},
		{json: `"20000"`, want: 20000},
		{json: `"{env.TI_TEST_NUMBER}"`, want: 5000},
		{json: `"{env.TI_TEST_UNSET}"`, want: 100},
		{json: `0`, want: 100},
		{json: `"{env.TI_TEST_ZERO}"`, wantErr: `n: "{env.TI_TEST_ZERO}" resolved to "0", which is not a positive number`},
		{json: `-3`, wantErr: `n: "-3" is not a positive number`},
		{json: `"lots"`, wantErr: `n: "lots" is not a positive number`},
		{json: `1e5`, wantErr: "a number is an integer"},
	}
	for _, tt := range tests {
		t.Run(tt.json, func(t *testing.T) {
			var n Number
			err := json.Unmarshal([]byte(tt.json), &n)
			var got int
			if err == nil {
				got, err = n.resolve(caddy.NewReplacer(), "n", 100)
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("resolved to %v, %v; want %v", got, err, tt.want)
			}
			out, _ := json.Marshal(n)
			if want := strings.Trim(tt.json, `"`); strings.Trim(string(out), `"`) != want {
				t.Fatalf("marshals as %s, want %s", out, tt.json)
			}
		})
	}
}

// TestRegistrationJSONRoundTrip is a config written by hand, or by an older version (nanoseconds): it reads, resolves
// and writes back unchanged.
func TestRegistrationJSONRoundTrip(t *testing.T) {
	in := `{"tenant":"t","client_id":"c","client_secret":"{env.S}","cache_max_entries":20000,"timeout":3000000000,` +
		`"refresh_before":"{env.TI_TEST_REFRESH}","sign_in":{"cookie_secrets":["{env.C}"],"idle_timeout":"2h"}}`
	t.Setenv("TI_TEST_REFRESH", "7m")
	t.Setenv("S", "secret")
	var r Registration
	if err := json.Unmarshal([]byte(in), &r); err != nil {
		t.Fatal(err)
	}
	out, _ := json.Marshal(r)
	if string(out) != in {
		t.Fatalf("round trip:\n got  %s\n want %s", out, in)
	}
	s, err := r.resolve()
	if err != nil {
		t.Fatal(err)
	}
	if s.CacheMaxEntries != 20000 || s.Timeout != 3*time.Second || s.RefreshBefore != 7*time.Minute ||
		s.ExpiryMargin != defaultExpiryMargin || s.ClientSecret != "secret" || s.SignIn.IdleTimeout != 2*time.Hour {
		t.Fatalf("resolved %+v", s)
	}
}
