package prom

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tokeninjector/caddy-token-injector/internal/callerauth"
	"github.com/tokeninjector/caddy-token-injector/internal/entra"
	"github.com/tokeninjector/caddy-token-injector/internal/metrics"
)

func twoRegistrations(yield func(RegistrationState)) {
	yield(RegistrationState{Registration: "aaaaaaaaaaaa", CacheEntries: 3, Sessions: 2, CallerTokens: 4, CallerBytes: 9000,
		CallerVerifications: 5})
	yield(RegistrationState{Registration: "bbbbbbbbbbbb", CacheEntries: 1, Sessions: -1})
}

// TestRegisterPerConfigLoad registers as handlers do: twice in one load's registry, then in the next load's.
// Caddy's registries are pedantic, so Gather also checks every collector's descriptions.
func TestRegisterPerConfigLoad(t *testing.T) {
	m := New(twoRegistrations)
	first := prometheus.NewPedanticRegistry()
	for range 2 {
		if err := m.Register(first); err != nil {
			t.Fatalf("register in the same load: %v", err)
		}
	}
	m.CacheLookup(true)
	reload := prometheus.NewPedanticRegistry()
	if err := m.Register(reload); err != nil {
		t.Fatalf("register in the next load: %v", err)
	}
	m.CacheLookup(true)
	if got := testutil.ToFloat64(m.cacheHits); got != 2 {
		t.Fatalf("cache hits %v, want 2: counters survive a reload", got)
	}
	if _, err := reload.Gather(); err != nil {
		t.Fatal(err)
	}
	want := `
# HELP caddy_token_injector_cache_entries Tokens held in the registration's cache in this process.
# TYPE caddy_token_injector_cache_entries gauge
caddy_token_injector_cache_entries{registration="aaaaaaaaaaaa"} 3
caddy_token_injector_cache_entries{registration="bbbbbbbbbbbb"} 1
# HELP caddy_token_injector_sessions Sign-in sessions held by the registration's store (an expired one until it is next looked up).
# TYPE caddy_token_injector_sessions gauge
caddy_token_injector_sessions{registration="aaaaaaaaaaaa"} 2
# HELP caddy_token_injector_caller_verifications_total RSA signature checks of caller tokens not proven before (or forgotten by the proven-token cache).
# TYPE caddy_token_injector_caller_verifications_total counter
caddy_token_injector_caller_verifications_total{registration="aaaaaaaaaaaa"} 5
caddy_token_injector_caller_verifications_total{registration="bbbbbbbbbbbb"} 0
`
	if err := testutil.GatherAndCompare(reload, strings.NewReader(want), "caddy_token_injector_cache_entries",
		"caddy_token_injector_sessions", "caddy_token_injector_caller_verifications_total"); err != nil {
		t.Fatal(err)
	}
	// A collector of the same name from elsewhere is a real conflict.
	clash := prometheus.NewCounter(prometheus.CounterOpts{Name: "caddy_token_injector_cache_hits_total", Help: "x"})
	other := prometheus.NewPedanticRegistry()
	_ = other.Register(clash)
	if err := m.Register(other); err == nil {
		t.Fatal("a different collector with the same name was accepted")
	}
}

func TestOutcomesAndReasons(t *testing.T) {
	m := New(nil)
	m.Acquired(metrics.SourceIdentityProvider, &entra.Error{StatusCode: 400, Code: "invalid_grant", Codes: []int{50076}})
	m.Acquired(metrics.SourceRenewal, &entra.Error{StatusCode: 401, Code: "invalid_client", Codes: []int{7000215}})
	m.Acquired(metrics.SourceIdentityProvider, &entra.Error{StatusCode: 400, Code: "invalid_request", Codes: []int{1234567}})
	m.Acquired(metrics.SourceIdentityProvider, &entra.UnavailableError{Op: "token request", Err: errors.New("refused")})
	m.Called(metrics.GrantRefreshToken, 20*time.Millisecond, &entra.Error{StatusCode: 503})
	m.Called(metrics.GrantRefreshToken, 20*time.Millisecond, nil)
	m.Rejected(&callerauth.InvalidTokenError{Description: "token expired"})
	m.RedisCalled(metrics.RedisGet, time.Millisecond, errors.New("i/o timeout"))
	m.RedisCalled(metrics.RedisOp(200), time.Millisecond, nil)
	for _, c := range []struct {
		got  prometheus.Collector
		want float64
	}{
		{m.acquisitions.WithLabelValues("identity_provider", "interaction_required", "mfa_required"), 1},
		{m.acquisitions.WithLabelValues("background_renewal", "server_error", "AADSTS7000215"), 1},
		{m.acquisitions.WithLabelValues("identity_provider", "server_error", "other"), 1},
		{m.acquisitions.WithLabelValues("identity_provider", "unavailable", "unreachable"), 1},
		{m.rejections.WithLabelValues("expired"), 1},
		{m.redisErrors.WithLabelValues("get"), 1},
		{m.redisErrors.WithLabelValues("other"), 0},
	} {
		if got := testutil.ToFloat64(c.got); got != c.want {
			t.Errorf("%v = %v, want %v", c.got, got, c.want)
		}
	}
	reg := prometheus.NewPedanticRegistry()
	_ = m.Register(reg)
	for series, want := range map[string]int{"caddy_token_injector_identity_provider_duration_seconds": 2,
		"caddy_token_injector_redis_duration_seconds": 2} {
		if n, err := testutil.GatherAndCount(reg, series); err != nil || n < want {
			t.Errorf("%s: %d series (%v)", series, n, err)
		}
	}
}

// TestHotPathAllocatesNothing: a cache hit reports two counters, with children resolved in New.
func TestHotPathAllocatesNothing(t *testing.T) {
	m := New(nil)
	var o metrics.Engine = m
	if n := testing.AllocsPerRun(1000, func() {
		o.CacheLookup(true)
		o.Acquired(metrics.SourceCache, nil)
		o.Waiting(1)
		o.Waiting(-1)
	}); n != 0 {
		t.Fatalf("%v allocations per cache hit, want 0", n)
	}
}
