package caddymodule

import (
	"cmp"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
)

// valueCase is one JSON value of a Duration or Number field: what it resolves to (with the field's default) or
// the error it gives, and how it is written back.
type valueCase[T comparable] struct {
	json     string
	want     T
	wantErr  string
	marshals string // "" means as given
}

// runValueCases unmarshals each case into a new V, resolves it and marshals it back.
func runValueCases[T comparable, V any](t *testing.T, cases []valueCase[T], resolve func(*V) (T, error)) {
	t.Helper()
	for _, tt := range cases {
		t.Run(tt.json, func(t *testing.T) {
			v := new(V)
			err := json.Unmarshal([]byte(tt.json), v)
			var got T
			if err == nil {
				got, err = resolve(v)
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
			out, _ := json.Marshal(v)
			if want := cmp.Or(tt.marshals, tt.json); string(out) != want {
				t.Fatalf("marshals as %s, want %s", out, want)
			}
		})
	}
}

func TestDurationJSON(t *testing.T) {
	t.Setenv("TI_TEST_DURATION", "90s")
	runValueCases(t, []valueCase[time.Duration]{ // the default is 1m
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
	}, func(d *Duration) (time.Duration, error) { return d.resolve(caddy.NewReplacer(), "f", time.Minute) })
}

func TestNumberJSON(t *testing.T) {
	t.Setenv("TI_TEST_NUMBER", "5000")
	t.Setenv("TI_TEST_ZERO", "0")
	runValueCases(t, []valueCase[int]{ // the default is 100
		{json: `20000`, want: 20000},
		{json: `"20000"`, want: 20000, marshals: `20000`},
		{json: `"{env.TI_TEST_NUMBER}"`, want: 5000},
		{json: `"{env.TI_TEST_UNSET}"`, want: 100},
		{json: `0`, want: 100},
		{json: `"{env.TI_TEST_ZERO}"`, wantErr: `n: "{env.TI_TEST_ZERO}" resolved to "0", which is not a positive number`},
		{json: `-3`, wantErr: `n: "-3" is not a positive number`},
		{json: `"lots"`, wantErr: `n: "lots" is not a positive number`},
		{json: `1e5`, wantErr: "a number is an integer"},
	}, func(n *Number) (int, error) { return n.resolve(caddy.NewReplacer(), "n", 100) })
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
		s.ExpiryMargin != defaultExpiryMargin || s.Credential.Secret != "secret" || s.SignIn.IdleTimeout != 2*time.Hour {
		t.Fatalf("resolved %+v", s)
	}
}
