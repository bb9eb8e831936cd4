package prom

import "github.com/prometheus/client_golang/prometheus"

// RegistrationState is what a registration holds at the moment of a scrape.
type RegistrationState struct {
	// Registration names it, as the admin API does (never a secret).
	Registration string
	// CacheEntries is the number of tokens its cache holds in this process.
	CacheEntries int
	// Sessions is the number of sign-in sessions its store holds; -1 when the store cannot count them.
	Sessions int
	// CallerTokens and CallerBytes are what its proven-token cache holds; CallerVerifications counts the RSA
	// checks of caller tokens it has made (a steady rate under steady load means the cache is too small).
	CallerTokens        int
	CallerBytes         int64
	CallerVerifications int64
}

// StateFunc calls yield for each live registration.
type StateFunc func(yield func(RegistrationState))

// stateCollector reads the registrations at each scrape: gauges that would otherwise need an update on every
// change.
type stateCollector struct {
	state                                     StateFunc
	entries, sessions                         *prometheus.Desc
	callerTokens, callerBytes, callerVerified *prometheus.Desc
}

func newStateCollector(state StateFunc) *stateCollector {
	name := func(n string) string { return prometheus.BuildFQName(namespace, subsystem, n) }
	return &stateCollector{state: state,
		entries: prometheus.NewDesc(name("cache_entries"),
			"Tokens held in the registration's cache in this process.", []string{"registration"}, nil),
		sessions: prometheus.NewDesc(name("sessions"),
			"Sign-in sessions held by the registration's store (an expired one until it is next looked up).",
			[]string{"registration"}, nil),
		callerTokens: prometheus.NewDesc(name("caller_cache_tokens"),
			"Caller tokens the registration's proven-token cache holds in this process.", []string{"registration"}, nil),
		callerBytes: prometheus.NewDesc(name("caller_cache_bytes"),
			"Bytes the proven-token cache counts against its bound (caller_cache_max_bytes).",
			[]string{"registration"}, nil),
		callerVerified: prometheus.NewDesc(name("caller_verifications_total"),
			"RSA signature checks of caller tokens not proven before (or forgotten by the proven-token cache).",
			[]string{"registration"}, nil),
	}
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.entries
	ch <- c.sessions
	ch <- c.callerTokens
	ch <- c.callerBytes
	ch <- c.callerVerified
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	if c.state == nil {
		return
	}
	c.state(func(s RegistrationState) {
		ch <- prometheus.MustNewConstMetric(c.entries, prometheus.GaugeValue, float64(s.CacheEntries), s.Registration)
		if s.Sessions >= 0 {
			ch <- prometheus.MustNewConstMetric(c.sessions, prometheus.GaugeValue, float64(s.Sessions), s.Registration)
		}
		ch <- prometheus.MustNewConstMetric(c.callerTokens, prometheus.GaugeValue, float64(s.CallerTokens), s.Registration)
		ch <- prometheus.MustNewConstMetric(c.callerBytes, prometheus.GaugeValue, float64(s.CallerBytes), s.Registration)
		ch <- prometheus.MustNewConstMetric(c.callerVerified, prometheus.CounterValue, float64(s.CallerVerifications),
			s.Registration)
	})
}
