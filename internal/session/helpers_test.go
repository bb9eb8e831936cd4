package session

import (
	"context"
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokeninjector/caddy-token-injector/internal/dev/testenv"
)

func newClock() *testenv.Clock { return testenv.NewClock(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)) }

func key(b byte) []byte {
	k := make([]byte, KeySize)
	for i := range k {
		k[i] = b + byte(i)
	}
	return k
}

// countingStore wraps a Store and counts lookups and touches, optionally failing them.
type countingStore struct {
	Store
	gets, touches atomic.Int64
	fail          atomic.Bool
}

func (s *countingStore) Get(ctx context.Context, id string) (Session, bool, error) {
	s.gets.Add(1)
	if s.fail.Load() {
		return Session{}, false, context.DeadlineExceeded
	}
	return s.Store.Get(ctx, id)
}

func (s *countingStore) Put(ctx context.Context, v Session, ttl time.Duration) error {
	if s.fail.Load() {
		return context.DeadlineExceeded
	}
	return s.Store.Put(ctx, v, ttl)
}

func (s *countingStore) Touch(ctx context.Context, v Session, ttl time.Duration) error {
	s.touches.Add(1)
	if s.fail.Load() {
		return context.DeadlineExceeded
	}
	return s.Store.Touch(ctx, v, ttl)
}

// endCountingStore is a countingStore that passes its store's count of ends on (EndCounter), so the Manager asks
// it only when something may have ended.
type endCountingStore struct{ *countingStore }

func (s endCountingStore) Ends(shard EndShard) uint64 { return s.Store.(EndCounter).Ends(shard) }

// newTestManager returns a Manager over a countingStore of 100 sessions, which counts no ends: every request asks
// the store (as over a store without EndCounter).
func newTestManager(t *testing.T, cfg Config) (*Manager, *countingStore, *testenv.Clock) {
	return newManagerOver(t, cfg, func(st *countingStore) Store { return st })
}

// newEndCountingManager is newTestManager over an endCountingStore.
func newEndCountingManager(t *testing.T, cfg Config) (*Manager, *countingStore, *testenv.Clock) {
	return newManagerOver(t, cfg, func(st *countingStore) Store { return endCountingStore{st} })
}

func newManagerOver(t *testing.T, cfg Config, wrap func(*countingStore) Store) (*Manager, *countingStore, *testenv.Clock) {
	t.Helper()
	c := newClock()
	if cfg.Keys == nil {
		cfg.Keys = [][]byte{key(1)}
	}
	cfg.Now = c.Now
	st := &countingStore{Store: NewMemoryStore(100, c.Now)}
	m, err := NewManager(cfg, wrap(st))
	if err != nil {
		t.Fatal(err)
	}
	return m, st, c
}

// httpsRequest is a request as the proxy sees it over TLS.
func httpsRequest(target string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, target, nil)
	r.TLS = &tls.ConnectionState{}
	return r
}

// setCookies returns the response's Set-Cookie headers parsed.
func setCookies(w *httptest.ResponseRecorder) []*http.Cookie {
	return (&http.Response{Header: w.Header()}).Cookies()
}

// withCookies copies every cookie w set onto a new request like r.
func withCookies(r *http.Request, w *httptest.ResponseRecorder) *http.Request {
	r2 := r.Clone(r.Context())
	r2.Header.Del("Cookie")
	var parts []string
	for _, c := range setCookies(w) {
		if c.MaxAge >= 0 {
			parts = append(parts, c.Name+"="+c.Value)
		}
	}
	if len(parts) > 0 {
		r2.Header.Set("Cookie", strings.Join(parts, "; "))
	}
	return r2
}

// signIn creates a session for user and returns a request carrying its cookie.
func signIn(t *testing.T, m *Manager, user string) (*Session, *http.Request) {
	t.Helper()
	r := httpsRequest("https://proxy.example/app")
	w := httptest.NewRecorder()
	s, err := m.Create(w, r, Session{UserKey: user, ObjectID: "oid", TenantID: "tid", Username: "u@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	return s, withCookies(r, w)
}
