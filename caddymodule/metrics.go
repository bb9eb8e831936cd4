package caddymodule

import (
	"strings"

	"github.com/caddyserver/caddy/v2"

	"github.com/tokeninjector/caddy-token-injector/internal/metrics/prom"
	"github.com/tokeninjector/caddy-token-injector/internal/session"
)

// observer receives what the engines, caches and caller checks report. It lives as long as the process, so its
// counters survive reloads; each config load registers it in that load's metrics registry (Caddy's /metrics).
var observer = prom.New(registrationMetrics)

// registerMetrics adds the caddy_token_injector_* collectors to ctx's config load. Every handler of a load calls it;
// the second registration in the same registry is not an error, and a reload's registry is a new one.
func registerMetrics(ctx caddy.Context) error {
	return observer.Register(ctx.GetMetricsRegistry())
}

// registrationMetrics reports each live registration's caches and sessions at a scrape.
func registrationMetrics(yield func(prom.RegistrationState)) {
	eachRegistration(func(id string, s *registrationState) {
		caller := s.validator.Stats()
		yield(prom.RegistrationState{Registration: id, CacheEntries: s.cache.Len(), Sessions: countSessions(s.sessions),
			CallerTokens: caller.Tokens, CallerBytes: caller.Bytes, CallerVerifications: caller.Verifications})
	})
}

// id names the registration for metrics and the admin API: a digest of what makes it a registration (cloud, tenant,
// client id, kind of credential), never a secret. Empty until a config load has applied its settings.
func (s *registrationState) id() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.applied.ClientID == "" {
		return ""
	}
	return strings.TrimPrefix(s.applied.poolKey(), "token_injector/")[:registrationIDLen]
}

// registrationIDLen is how many hex digits of the pool key's digest name a registration: 48 bits.
const registrationIDLen = 12

// countSessions is the number of sessions st holds, -1 when it cannot count them.
func countSessions(st session.Store) int {
	if c, ok := st.(session.Counter); ok {
		return c.Len()
	}
	return -1
}
