package session

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/tokeninjector/caddy-token-injector/internal/dev/testenv"
)

// TestCallerNamesTheSessionsUser: the request path's Caller names the user Load names, with the
// placeholders access logs print, on the first request (cookie opened) and on later ones (cookie remembered).
func TestCallerNamesTheSessionsUser(t *testing.T) {
	m, _, _ := newTestManager(t, Config{})
	s, r := signIn(t, m, "oid.tid")
	for i := range 3 {
		c, err := m.Caller(r)
		ok := err == nil
		if !ok || c.SessionID != s.ID || c.UserKey != "oid.tid" || c.User.ObjectID != "oid" || c.User.Username != "u@example.com" {
			t.Fatalf("request %d: Caller = %+v, %v; want session %s of oid.tid", i, c, ok, s.ID)
		}
		if v, ok := c.Placeholders("http.auth.user.id"); !ok || v != "oid" {
			t.Fatalf("request %d: {http.auth.user.id} = %v, %v", i, v, ok)
		}
	}
	if _, err := m.Caller(httpsRequest("https://proxy.example/")); err != ErrNoSession {
		t.Fatal("a request without a cookie authenticated")
	}
}

// Each session has a memo of its own (tokencache.Memo), the same on every request of its cookie, so its
// requests after the first cost no token-cache lookup; it is remembered, and forgotten, with the cookie.
func TestEachSessionHasItsOwnMemo(t *testing.T) {
	m, _, _ := newTestManager(t, Config{})
	_, r1 := signIn(t, m, "oid.tid")
	_, r2 := signIn(t, m, "oid.tid")
	first, err1 := m.Caller(r1)
	again, err2 := m.Caller(r1)
	other, err3 := m.Caller(r2)
	if err1 != nil || err2 != nil || err3 != nil {
		t.Fatal(err1, err2, err3)
	}
	if first.Memo == nil || again.Memo != first.Memo {
		t.Fatalf("the session's memo is %p, then %p: want one, kept", first.Memo, again.Memo)
	}
	if other.Memo == first.Memo {
		t.Fatal("two sessions of one user share a memo")
	}
}

// TestRememberedCookieKeepsNothingOfTheRequest: a Manager remembers a cookie by its tag, with no copy of the value,
// and what it keeps of the session is its own copy, not a part of the request's Cookie header, which would keep
// each session's first request alive as long as the session.
func TestRememberedCookieKeepsNothingOfTheRequest(t *testing.T) {
	m, _, _ := newTestManager(t, Config{})
	s, r := signIn(t, m, "oid.tid")
	if _, err := m.Caller(r); err != nil {
		t.Fatal(err)
	}
	line := r.Header["Cookie"][0]
	v, _, _ := nextCookie(line, m.CookieName(r))
	c, tag, hit := m.opened.get(v, m.cfg.Now())
	if !hit || c.proof != tag.Proof() || c.caller.SessionID != s.ID || c.caller.UserKey != "oid.tid" {
		t.Fatalf("remembered %+v (hit %v), want the cookie of session %s", c, hit, s.ID)
	}
	start := uintptr(unsafe.Pointer(unsafe.StringData(line)))
	for _, kept := range []string{c.caller.SessionID, c.caller.UserKey} {
		if p := uintptr(unsafe.Pointer(unsafe.StringData(kept))); p >= start && p < start+uintptr(len(line)) {
			t.Fatalf("the remembered %q points into the request's Cookie header", kept)
		}
	}
}

// TestRememberedCookieNeedsTheWholeTag: an entry found under a cookie's tag's Key serves it only if it kept the
// tag's Proof too, so a cookie whose tag shares only the first half with a remembered one's is opened, not taken
// for that session.
func TestRememberedCookieNeedsTheWholeTag(t *testing.T) {
	m, _, _ := newTestManager(t, Config{})
	_, r := signIn(t, m, "oid.tid")
	if _, err := m.Caller(r); err != nil {
		t.Fatal(err)
	}
	v, _, _ := nextCookie(r.Header["Cookie"][0], m.CookieName(r))
	forged := v[:len(v)-2] + "AA"
	if forged == v {
		forged = v[:len(v)-2] + "BB"
	}
	c, tag, _ := m.opened.get(v, m.cfg.Now())
	// Make the forged value's Key name the session's entry, as a collision in the first half would.
	m.opened.cache.Add(m.opened.tags.Of(forged).Key(), c, m.cfg.Now().Add(time.Hour))
	if _, _, hit := m.opened.get(forged, m.cfg.Now()); hit {
		t.Fatalf("a value with another Proof (%x, not %x) was taken for the remembered cookie", m.opened.tags.Of(forged).Proof(), tag.Proof())
	}
	rf := httptest.NewRequest(http.MethodGet, r.URL.String(), nil)
	rf.Header.Set("Cookie", m.CookieName(r)+"="+forged)
	if _, err := m.Caller(rf); err != ErrNoSession {
		t.Fatalf("the forged cookie: %v, want ErrNoSession", err)
	}
}

// TestOpenedCookieIsThreeCacheLines holds openedCookie and Caller to the layout their comments promise: 192 bytes,
// the checks in the first line, and what a request reads of the caller in the second.
func TestOpenedCookieIsThreeCacheLines(t *testing.T) {
	var c openedCookie
	if size, caller := unsafe.Sizeof(c), unsafe.Offsetof(c.caller); size != 192 || caller != 64 {
		t.Errorf("openedCookie is %d bytes with its caller at %d; want 192 and 64", size, caller)
	}
	u := &c.caller
	hotEnd := unsafe.Offsetof(u.User) + unsafe.Offsetof(u.User.TenantID) + unsafe.Sizeof(u.User.TenantID)
	if hotEnd > 64 || unsafe.Offsetof(u.Memo) > 56 || unsafe.Offsetof(u.Placeholders) > 56 {
		t.Errorf("the caller's hot fields end at byte %d of it, past its first line", hotEnd)
	}
}

// TestRememberedCookieDoesNotOutliveItsSession: a cookie remembered by one route's Manager stops working as soon
// as its session ends, however it ends: a logout through another Manager sharing the store (the /.auth/ route),
// "sign out everywhere", a deletion from the shared store (another replica's logout), an eviction or a flush of
// the store, or the idle timeout. Both over a store the Manager asks every time and over one that counts its
// ends, which the Manager asks only when the count moved.
func TestRememberedCookieDoesNotOutliveItsSession(t *testing.T) {
	tests := []struct {
		name string
		end  func(t *testing.T, other *Manager, st Store, r *httptestRequest, c advancer)
	}{
		{"logout through another route", func(t *testing.T, other *Manager, _ Store, r *httptestRequest, _ advancer) {
			if _, ok := other.Destroy(httptest.NewRecorder(), r.Request); !ok {
				t.Fatal("the other route found no session to end")
			}
		}},
		{"sign out everywhere", func(t *testing.T, other *Manager, _ Store, _ *httptestRequest, _ advancer) {
			if n, err := other.DestroyUser(context.Background(), "oid.tid"); n != 1 || err != nil {
				t.Fatalf("DestroyUser = %d, %v", n, err)
			}
		}},
		{"deleted from the shared store", func(t *testing.T, _ *Manager, st Store, r *httptestRequest, _ advancer) {
			if err := st.Delete(context.Background(), r.id); err != nil {
				t.Fatal(err)
			}
		}},
		{"evicted from a full store", func(t *testing.T, _ *Manager, st Store, r *httptestRequest, _ advancer) {
			for i := range 1000 { // the store holds 100; other users' sessions, as one user's are bounded lower
				if err := st.Put(context.Background(), Session{ID: fmt.Sprint("other-", i), UserKey: fmt.Sprint("x", i)}, time.Hour); err != nil {
					t.Fatal(err)
				}
			}
		}},
		{"flushed (a replica that may have missed a logout)", func(t *testing.T, _ *Manager, st Store, _ *httptestRequest, _ advancer) {
			if n := st.(*countingStore).Store.(Flusher).Flush(); n != 1 {
				t.Fatalf("Flush = %d", n)
			}
		}},
		{"idle timeout", func(_ *testing.T, _ *Manager, _ Store, _ *httptestRequest, c advancer) {
			c.Advance(DefaultIdleTimeout)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name+"/asked every time", func(t *testing.T) { rememberedCookieEnds(t, newTestManager, tt.end) })
		t.Run(tt.name+"/counting its ends", func(t *testing.T) { rememberedCookieEnds(t, newEndCountingManager, tt.end) })
	}
}

func rememberedCookieEnds(t *testing.T, newManager func(*testing.T, Config) (*Manager, *countingStore, *testenv.Clock),
	end func(*testing.T, *Manager, Store, *httptestRequest, advancer)) {
	m, st, clock := newManager(t, Config{})
	other, err := NewManager(Config{Keys: [][]byte{key(1)}, Now: clock.Now}, st)
	if err != nil {
		t.Fatal(err)
	}
	s, r := signIn(t, m, "oid.tid")
	for range 3 { // opened, then remembered
		if _, err := m.Caller(r); err != nil {
			t.Fatal("a fresh session did not authenticate")
		}
	}
	end(t, other, st, &httptestRequest{Request: r, id: s.ID}, clock)
	if c, err := m.Caller(r); err == nil {
		t.Fatalf("the remembered cookie still authenticates after the session ended: %+v", c)
	}
	if _, ok := m.Load(r); ok {
		t.Fatal("the ended session still loads")
	}
}

// TestRememberedCookieCostsOneLookup: over a store that counts its ends, a remembered cookie is checked with the
// store once, then again only when its shard's count moves (an end there), when a touch is due, or a minute after
// the last check; over one that does not, on every request.
func TestRememberedCookieCostsOneLookup(t *testing.T) {
	m, st, clock := newEndCountingManager(t, Config{})
	mine, r := signIn(t, m, "oid.tid")
	theirs, other := signIn(t, m, "other.tid")
	gets := func(n int) int64 {
		t.Helper()
		before := st.gets.Load()
		for range n {
			if _, err := m.Caller(r); err != nil {
				t.Fatal(err)
			}
		}
		return st.gets.Load() - before
	}
	if n := gets(100); n != 1 {
		t.Fatalf("%d store lookups for 100 requests with a new cookie, want 1 (opening it)", n)
	}
	if n := gets(100); n != 0 {
		t.Fatalf("%d store lookups for 100 requests with a remembered cookie, want 0", n)
	}
	if _, ok := m.Destroy(httptest.NewRecorder(), other); !ok { // another user's logout
		t.Fatal("no session to end")
	}
	want := int64(0) // it moves only its own shard's count
	if ShardOf(theirs.ID) == ShardOf(mine.ID) {
		want = 1
	}
	if n := gets(100); n != want {
		t.Fatalf("%d store lookups after another session ended, want %d", n, want)
	}
	st.Store.(Flusher).Flush() // every shard's count moves; the session is gone
	if _, err := m.Caller(r); err != ErrNoSession {
		t.Fatalf("after a flush: %v, want ErrNoSession", err)
	}
	_, r = signIn(t, m, "oid.tid")
	gets(2) // opened, remembered
	clock.Advance(touchInterval)
	touches := st.touches.Load()
	if n := gets(100); n != 1 || st.touches.Load() != touches+1 {
		t.Fatalf("a minute on: %d lookups and %d touches, want 1 and 1", n, st.touches.Load()-touches)
	}

	m, st, _ = newTestManager(t, Config{})
	_, r = signIn(t, m, "oid.tid")
	if n := gets(100); n != 100 {
		t.Fatalf("%d store lookups for 100 requests over a store that counts no ends, want 100", n)
	}
}

// TestCallerRefusesWhatLoadRefuses runs TestLoadRefusesBadCookies's kinds of cookie through Caller,
// twice each: a refused cookie must not be remembered as opened.
func TestCallerRefusesWhatLoadRefuses(t *testing.T) {
	m, _, _ := newTestManager(t, Config{})
	_, good := signIn(t, m, "oid.tid")
	value := good.Cookies()[0].Value
	tampered := []byte(value)
	tampered[20] = map[bool]byte{true: 'B', false: 'A'}[tampered[20] == 'A']
	for name, header := range map[string]string{
		"empty":      DefaultCookieName + "=",
		"garbage":    DefaultCookieName + "=x",
		"tampered":   DefaultCookieName + "=" + string(tampered),
		"truncated":  DefaultCookieName + "=" + value[:len(value)-5],
		"other name": "token_injector=" + value,
		"quoted bad": DefaultCookieName + `="x"`,
	} {
		t.Run(name, func(t *testing.T) {
			r := httpsRequest("https://proxy.example/")
			r.Header.Set("Cookie", header)
			for range 2 {
				if c, err := m.Caller(r); err == nil {
					t.Fatalf("Caller = %+v", c)
				}
			}
		})
	}
	r := httpsRequest("https://proxy.example/")
	r.Header["Cookie"] = []string{"a=b; " + DefaultCookieName + "=bogus", `c=d; ` + DefaultCookieName + `="` + value + `"`}
	if _, err := m.Caller(r); err != nil {
		t.Fatal("a valid quoted cookie on a second Cookie line, after a bogus one, was not found")
	}
}

// TestRememberedCookieExpiresWithItsSeal: the absolute timeout ends a remembered cookie too.
func TestRememberedCookieExpiresWithItsSeal(t *testing.T) {
	m, _, clock := newTestManager(t, Config{AbsoluteTimeout: time.Hour, IdleTimeout: 2 * time.Hour})
	_, r := signIn(t, m, "oid.tid")
	if _, err := m.Caller(r); err != nil {
		t.Fatal("a fresh session did not authenticate")
	}
	clock.Advance(time.Hour)
	if _, err := m.Caller(r); err == nil {
		t.Fatal("a remembered cookie outlived its absolute timeout")
	}
}

// BenchmarkCaller is the session cookie on the request path once opened: a hash and a lookup of the
// remembered cookie, the count of ends of its shard, and no store Get. With 50,000 sessions, taken in a scattered
// order, each call finds the remembered cookie cold, as a large tenant's requests do.
//
//	go test -run '^$' -bench Caller -benchmem ./internal/session
func BenchmarkCaller(b *testing.B) {
	for _, n := range []int{1, 50_000} {
		b.Run(fmt.Sprintf("sessions=%d", n), func(b *testing.B) {
			m, err := NewManager(Config{Keys: [][]byte{key(1)}}, nil)
			if err != nil {
				b.Fatal(err)
			}
			reqs := make([]*http.Request, n)
			for i := range reqs {
				r := httpsRequest("https://proxy.example/app")
				w := httptest.NewRecorder()
				u := fmt.Sprintf("%036d.%036d", i, i) // an oid.tid's length
				if _, err := m.Create(w, r, Session{UserKey: u, ObjectID: u[:36], TenantID: u[37:]}); err != nil {
					b.Fatal(err)
				}
				reqs[i] = withCookies(r, w)
				_, _ = m.Caller(reqs[i]) // opened once
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, err := m.Caller(reqs[i]); err != nil {
					b.Fatal("no session")
				}
				i = (i + 7919) % n // a prime stride: neighbours in memory are not taken one after the other
			}
		})
	}
}

type httptestRequest struct {
	*http.Request
	id string
}

type advancer interface{ Advance(time.Duration) }

// TestStripCookieWithoutSignIn: a route without sign-in (a nil Manager) strips the default names and leaves other
// cookies, whatever the header holds.
func TestStripCookieWithoutSignIn(t *testing.T) {
	var m *Manager
	for in, want := range map[string]string{"a=b": "a=b", "token_injector=x; a=b": "a=b", "token_injector=x": ""} {
		r := httpsRequest("https://proxy.example/")
		r.Header.Set("Cookie", in)
		m.StripCookie(r)
		if got := r.Header.Get("Cookie"); got != want {
			t.Errorf("Cookie %q stripped to %q, want %q", in, got, want)
		}
	}
}

// logoutAfterRead deletes the session right after the next read of it, once armed: a logout landing between a
// request's read of its session and that request's touch.
type logoutAfterRead struct {
	Store
	armed atomic.Bool
}

func (s *logoutAfterRead) Get(ctx context.Context, id string) (Session, bool, error) {
	v, ok, err := s.Store.Get(ctx, id)
	if ok && s.armed.CompareAndSwap(true, false) {
		_ = s.Store.Delete(ctx, id)
	}
	return v, ok, err
}

// The request that read its session before a logout is served; its touch does not bring the session back.
func TestTouchDoesNotUndoALogoutThatRacedIt(t *testing.T) {
	racing := &logoutAfterRead{}
	m, st, clock := newManagerOver(t, Config{}, func(st *countingStore) Store { racing.Store = st; return racing })
	_, r := signIn(t, m, "oid.tid")
	clock.Advance(touchInterval)
	racing.armed.Store(true)
	if _, err := m.Caller(r); err != nil {
		t.Fatalf("the request that read its session before the logout: %v", err)
	}
	if st.touches.Load() != 1 {
		t.Fatalf("%d touches, want the one that raced the logout", st.touches.Load())
	}
	if _, err := m.Caller(r); err != ErrNoSession {
		t.Fatalf("after the logout: %v, want ErrNoSession: the touch brought the session back", err)
	}
}
