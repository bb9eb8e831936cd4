// Package prom implements the metrics ports with Prometheus collectors named caddy_token_injector_*. One Metrics
// lives as long as the process; Register adds its collectors to a registry (Caddy gives each config load a new
// one), so counters survive config reloads. Every label value comes from a bounded set.
package prom

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tokeninjector/caddy-token-injector/internal/callerauth"
	"github.com/tokeninjector/caddy-token-injector/internal/contract"
	"github.com/tokeninjector/caddy-token-injector/internal/metrics"
)

const namespace, subsystem = "caddy", "token_injector"

// Metrics implements metrics.Observer. The methods called per request (a cache hit) use label children resolved
// in New: an atomic add each, no allocation. The histograms resolve theirs when first used, so a grant or Redis
// operation that never happens exports no empty series.
type Metrics struct {
	acquisitions *prometheus.CounterVec
	acquiredOK   [metrics.NumSources]prometheus.Counter

	idpDuration *prometheus.HistogramVec

	cacheHits, cacheMisses, evictions prometheus.Counter
	waiters                           prometheus.Gauge

	rejections *prometheus.CounterVec

	redisErrors   *prometheus.CounterVec
	redisDuration *prometheus.HistogramVec

	state *stateCollector
}

func opts(name, help string) prometheus.Opts {
	return prometheus.Opts{Namespace: namespace, Subsystem: subsystem, Name: name, Help: help}
}

// New returns the collectors; state, when set, reports the registrations' cache entries and sessions at each
// scrape.
func New(state StateFunc) *Metrics {
	m := &Metrics{
		acquisitions: prometheus.NewCounterVec(prometheus.CounterOpts(opts("acquisitions_total",
			"Token acquisitions by source (cache, identity_provider, background_renewal) and outcome; reason is the "+
				"interaction_required or access_denied reason, the server_error's AADSTS code, or the unavailable kind.")),
			[]string{"source", "outcome", "reason"}),
		idpDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Subsystem: subsystem,
			Name: "identity_provider_duration_seconds", Help: "Duration of identity-provider calls by grant and outcome.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 12)}, []string{"grant", "outcome"}),
		cacheHits: prometheus.NewCounter(prometheus.CounterOpts(opts("cache_hits_total",
			"Requests answered from the token cache."))),
		cacheMisses: prometheus.NewCounter(prometheus.CounterOpts(opts("cache_misses_total",
			"Requests that found no usable token in the cache."))),
		evictions: prometheus.NewCounter(prometheus.CounterOpts(opts("cache_evictions_total",
			"Cached tokens evicted to make room for new ones (the cache is full: raise cache_max_entries)."))),
		waiters: prometheus.NewGauge(prometheus.GaugeOpts(opts("singleflight_waiters",
			"Requests waiting now on an identity-provider call (one call per user and scope set)."))),
		rejections: prometheus.NewCounterVec(prometheus.CounterOpts(opts("caller_rejections_total",
			"Callers' tokens refused before any identity-provider call, by reason.")), []string{"reason"}),
		redisErrors: prometheus.NewCounterVec(prometheus.CounterOpts(opts("redis_errors_total",
			"Failed Redis operations by operation.")), []string{"op"}),
		redisDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Subsystem: subsystem,
			Name: "redis_duration_seconds", Help: "Duration of Redis operations by operation.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 12)}, []string{"op"}),
		state: newStateCollector(state),
	}
	for s := range metrics.NumSources {
		m.acquiredOK[s] = m.acquisitions.WithLabelValues(metrics.Source(s).String(), contract.OutcomeOK, "")
	}
	return m
}

func (m *Metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.acquisitions, m.idpDuration, m.cacheHits, m.cacheMisses, m.evictions, m.waiters,
		m.rejections, m.redisErrors, m.redisDuration, m.state}
}

// Register adds the collectors to reg. Registering them again in the same registry (a second handler of one config
// load) is not an error; Caddy gives each load a fresh registry, so a reload registers them anew.
func (m *Metrics) Register(reg prometheus.Registerer) error {
	for _, c := range m.collectors() {
		if err := reg.Register(c); err != nil {
			var dup prometheus.AlreadyRegisteredError
			if errors.As(err, &dup) && dup.ExistingCollector == c {
				continue
			}
			return err
		}
	}
	return nil
}

// CacheLookup implements metrics.Engine.
func (m *Metrics) CacheLookup(hit bool) {
	if hit {
		m.cacheHits.Inc()
	} else {
		m.cacheMisses.Inc()
	}
}

// Acquired implements metrics.Engine.
func (m *Metrics) Acquired(source metrics.Source, err error) {
	if err == nil {
		m.acquiredOK[source].Inc()
		return
	}
	outcome, reason := contract.Outcome(err)
	m.acquisitions.WithLabelValues(source.String(), outcome, reason).Inc()
}

// Waiting implements metrics.Engine.
func (m *Metrics) Waiting(delta int) { m.waiters.Add(float64(delta)) }

// Called implements metrics.IdentityProvider.
func (m *Metrics) Called(grant metrics.Grant, d time.Duration, err error) {
	outcome, _ := contract.Outcome(err)
	m.idpDuration.WithLabelValues(grant.String(), outcome).Observe(d.Seconds())
}

// Evicted implements metrics.Cache.
func (m *Metrics) Evicted(n int) {
	if n > 0 {
		m.evictions.Add(float64(n))
	}
}

// Rejected implements metrics.Callers.
func (m *Metrics) Rejected(err error) {
	m.rejections.WithLabelValues(callerauth.RejectionReason(err)).Inc()
}

// RedisCalled implements metrics.Redis.
func (m *Metrics) RedisCalled(op metrics.RedisOp, d time.Duration, err error) {
	name := op.String() // "other" beyond the enum
	m.redisDuration.WithLabelValues(name).Observe(d.Seconds())
	if err != nil {
		m.redisErrors.WithLabelValues(name).Inc()
	}
}

var _ metrics.Observer = (*Metrics)(nil)
