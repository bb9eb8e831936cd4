package callerauth

import (
	"context"
	"crypto/rsa"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// defaultKeyRefresh is how old the keys may get before the next request refetches them: a key Entra
	// withdraws (rollover, revocation) stops being trusted within this time, proven tokens included.
	defaultKeyRefresh = time.Hour
	// minRefreshInterval limits refetches caused by unknown kids (or stale keys), so tokens with random kids cannot
	// make us hammer Entra.
	minRefreshInterval = 30 * time.Second
	// coldRetryInterval: while we have never had keys, a failed fetch is retried at most this often; callers in
	// between get the same error at once instead of each waiting on a fetch that is likely to fail too.
	coldRetryInterval = time.Second
)

// discovery is what the two OpenID configuration documents tell us.
type discovery struct {
	tenantID string // from the v2 issuer; empty for a multi-tenant document, whose issuers name tenantTemplate
	v2Issuer string
	v2JWKS   string
	v1Issuer string // empty when the v1 document or its keys could not be fetched: v1 tokens are then rejected
	v1JWKS   string
}

// keySet is an immutable snapshot; a refresh replaces it whole.
type keySet struct {
	discovery
	keys    map[string]*rsa.PublicKey // by kid; the union of both JWKS documents
	fetched time.Time
}

// acceptsIssuer compares case-insensitively: URL schemes and hosts are, and so is the tenant GUID in the path. A
// multi-tenant document's issuers are templates: {tenantid} stands for the token's own tid, already checked.
func (ks *keySet) acceptsIssuer(iss, tid string) bool {
	v2, v1 := ks.v2Issuer, ks.v1Issuer
	if ks.tenantID == "" {
		v2, v1 = strings.Replace(v2, tenantTemplate, tid, 1), strings.Replace(v1, tenantTemplate, tid, 1)
	}
	return iss != "" && (strings.EqualFold(iss, v2) || (v1 != "" && strings.EqualFold(iss, v1)))
}

// keyStore owns the tenant's discovery data and signing keys. Reads are a lock-free pointer load; fetches are
// coalesced into one flight at a time.
type keyStore struct {
	authority string
	tenant    string
	fetcher   atomic.Pointer[fetcher]
	life      context.Context // ends when the validator closes; bounds every fetch
	now       func() time.Time
	onRemoved func(kids map[string]bool) // called after a refresh withdrew keys

	cur atomic.Pointer[keySet]

	mu          sync.Mutex
	flight      *flight   // the fetch in progress, if any
	lastAttempt time.Time // start of the latest fetch, for the rate limits
	lastErr     error     // error of the latest fetch, nil once one succeeded
}

// fetcher is how documents are fetched; a reload may replace it.
type fetcher struct {
	client  *http.Client
	timeout time.Duration // bounds each document
	refresh time.Duration // how old keys may get
}

// flight is one fetch that any number of callers wait on.
type flight struct {
	done chan struct{}
	set  *keySet // valid once done is closed
	err  error
}

func (f *flight) wait(ctx context.Context) (*keySet, error) {
	select {
	case <-f.done:
		return f.set, f.err
	default:
	}
	select {
	case <-f.done:
		return f.set, f.err
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: waiting for signing keys: %w", ErrKeysUnavailable, context.Cause(ctx))
	}
}

// current returns the keys to validate with: it loads them on first use and, once they are older than the
// refresh interval, lets one caller refetch them while everyone else (and that caller too, should the refetch
// fail) keeps the old ones. now is the caller's clock reading, which spares a cache hit a second one.
func (s *keyStore) current(ctx context.Context, now time.Time) (*keySet, error) {
	maxAge := s.fetcher.Load().refresh
	if ks := s.cur.Load(); ks != nil && now.Sub(ks.fetched) < maxAge {
		return ks, nil
	}
	s.mu.Lock()
	ks, now := s.cur.Load(), s.now()
	if ks != nil {
		if now.Sub(ks.fetched) < maxAge || s.flight != nil || now.Sub(s.lastAttempt) < minRefreshInterval {
			s.mu.Unlock()
			return ks, nil
		}
		f := s.launch(now)
		s.mu.Unlock()
		if fresh, err := f.wait(ctx); err == nil {
			return fresh, nil
		}
		return ks, nil
	}
	f := s.flight
	if f == nil {
		if s.lastErr != nil && now.Sub(s.lastAttempt) < coldRetryInterval {
			err := s.lastErr
			s.mu.Unlock()
			return nil, err
		}
		f = s.launch(now)
	}
	s.mu.Unlock()
	return f.wait(ctx)
}

// refreshForUnknownKid refetches the keys because a token names a kid we do not have (Entra may have started
// signing with a new key), at most once per minRefreshInterval; callers arriving meanwhile share the fetch.
// Rate-limited callers get the current keys, or the latest fetch error if it failed: then we could not check.
func (s *keyStore) refreshForUnknownKid(ctx context.Context) (*keySet, error) {
	s.mu.Lock()
	f := s.flight
	if f == nil {
		now := s.now()
		if now.Sub(s.lastAttempt) < minRefreshInterval {
			ks, err := s.cur.Load(), s.lastErr
			s.mu.Unlock()
			if err != nil {
				return nil, err
			}
			return ks, nil
		}
		f = s.launch(now)
	}
	s.mu.Unlock()
	return f.wait(ctx)
}

// launch starts a fetch. Called with s.mu held and no flight in progress.
func (s *keyStore) launch(now time.Time) *flight {
	f := &flight{done: make(chan struct{})}
	s.flight, s.lastAttempt = f, now
	old := s.cur.Load()
	// The fetch must not die with the caller that happened to start it, since others wait on it too; it ends
	// with the validator, and every request in it is bounded by FetchTimeout.
	go s.run(s.life, f, old)
	return f
}

func (s *keyStore) run(ctx context.Context, f *flight, old *keySet) {
	set, err := s.safeFetch(ctx, old)
	f.set, f.err = set, err
	s.mu.Lock()
	if err == nil {
		s.cur.Store(set)
	}
	s.lastErr = err
	s.flight = nil
	s.mu.Unlock()
	close(f.done)
	if err == nil && old != nil && s.onRemoved != nil {
		if gone := removedKids(old, set); len(gone) > 0 {
			s.onRemoved(gone)
		}
	}
}

// safeFetch is fetch on its own goroutine, where a panic on a malformed document would end the process.
func (s *keyStore) safeFetch(ctx context.Context, old *keySet) (set *keySet, err error) {
	defer func() {
		if p := recover(); p != nil {
			set, err = nil, fmt.Errorf("%w: fetching keys panicked: %v", ErrKeysUnavailable, p)
		}
	}()
	return s.fetch(ctx, old)
}

// fetch gets a new key set. Discovery is refetched when the keys are stale (or first loaded), and while the v1
// issuer is missing so that it comes back after an outage; an unknown-kid refresh otherwise only refetches JWKS.
func (s *keyStore) fetch(ctx context.Context, old *keySet) (*keySet, error) {
	var d discovery
	if old == nil || s.now().Sub(old.fetched) >= s.fetcher.Load().refresh || old.v1Issuer == "" {
		var err error
		if d, err = s.discover(ctx); err != nil {
			return nil, err
		}
	} else {
		d = old.discovery
	}
	keys, d, err := s.fetchKeys(ctx, d)
	if err != nil {
		return nil, err
	}
	return &keySet{discovery: d, keys: keys, fetched: s.now()}, nil
}

func removedKids(old, cur *keySet) map[string]bool {
	var gone map[string]bool
	for kid := range old.keys {
		if _, ok := cur.keys[kid]; !ok {
			if gone == nil {
				gone = make(map[string]bool)
			}
			gone[kid] = true
		}
	}
	return gone
}
