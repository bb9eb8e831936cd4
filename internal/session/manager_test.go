package session

import (
	"bytes"
	"encoding/binary"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestCreateLoad(t *testing.T) {
	m, _, c := newTestManager(t, Config{})
	s, r := signIn(t, m, "oid.tid")
	if len(s.ID) != 43 {
		t.Fatalf("ID %q is not 256 bits of base64url", s.ID)
	}
	if !s.CreatedAt.Equal(c.Now()) || !s.LastSeenAt.Equal(c.Now()) {
		t.Fatalf("times not set: %+v", s)
	}
	got, ok := m.Load(r)
	if !ok || got.ID != s.ID || got.UserKey != "oid.tid" || got.Username != "u@example.com" {
		t.Fatalf("Load = %+v, %v", got, ok)
	}
	if v := r.Header.Get("Cookie"); bytes.Contains([]byte(v), []byte(s.ID)) {
		t.Fatal("the cookie carries the session ID in clear")
	}
}

func TestCreateIgnoresGivenIDAndReplacesOld(t *testing.T) {
	m, _, _ := newTestManager(t, Config{})
	old, r := signIn(t, m, "oid.tid")
	w := httptest.NewRecorder()
	s, err := m.Create(w, r, Session{ID: "attacker-chosen", UserKey: "oid.tid"})
	if err != nil {
		t.Fatal(err)
	}
	if s.ID == "attacker-chosen" || s.ID == old.ID {
		t.Fatalf("Create kept ID %q", s.ID)
	}
	if _, ok := m.Load(r); ok {
		t.Fatal("the replaced session still loads")
	}
	if _, err := m.Create(httptest.NewRecorder(), r, Session{}); err == nil {
		t.Fatal("Create accepted a session without a user key")
	}
}

func TestLoadRefusesBadCookies(t *testing.T) {
	m, _, c := newTestManager(t, Config{})
	foreign, _, _ := newTestManager(t, Config{Keys: [][]byte{key(50)}})
	s, good := signIn(t, m, "oid.tid")
	value := good.Cookies()[0].Value
	idRaw := make([]byte, 8+idBytes)
	binary.BigEndian.PutUint64(idRaw, uint64(c.Now().Add(time.Hour).Unix()))
	foreignCookie, _ := foreign.Seal(idRaw, cookiePurpose)
	preLogin, _ := m.Seal(idRaw, "signin.prelogin")
	unknownID, _ := m.Seal(idRaw, cookiePurpose) // well formed, but no such session
	tampered := []byte(value)
	tampered[20] = map[bool]byte{true: 'B', false: 'A'}[tampered[20] == 'A']
	tests := map[string]string{
		"missing":       "",
		"empty":         DefaultCookieName + "=",
		"garbage":       DefaultCookieName + "=x",
		"tampered":      DefaultCookieName + "=" + string(tampered),
		"truncated":     DefaultCookieName + "=" + value[:len(value)-5],
		"foreign key":   DefaultCookieName + "=" + foreignCookie,
		"purpose swap":  DefaultCookieName + "=" + preLogin,
		"unknown id":    DefaultCookieName + "=" + unknownID,
		"raw id":        DefaultCookieName + "=" + s.ID,
		"other name":    "token_injector=" + value,
		"two bad first": DefaultCookieName + "=x; " + DefaultCookieName + "=y",
	}
	for name, header := range tests {
		t.Run(name, func(t *testing.T) {
			r := httpsRequest("https://proxy.example/")
			if header != "" {
				r.Header.Set("Cookie", header)
			}
			if got, ok := m.Load(r); ok || got != nil {
				t.Fatalf("Load = %+v, %v", got, ok)
			}
		})
	}
	// A bad cookie of the same name before the good one does not hide it.
	r := httpsRequest("https://proxy.example/")
	r.Header.Set("Cookie", DefaultCookieName+"=bogus; "+DefaultCookieName+"="+value)
	if _, ok := m.Load(r); !ok {
		t.Fatal("a bogus same-name cookie hid the valid one")
	}
}

func TestIdleTimeout(t *testing.T) {
	m, st, c := newTestManager(t, Config{IdleTimeout: 10 * time.Minute})
	_, r := signIn(t, m, "oid.tid")
	touches := st.touches.Load()

	// Within a minute, Load does not write.
	c.Advance(30 * time.Second)
	if _, ok := m.Load(r); !ok {
		t.Fatal("session gone after 30s")
	}
	if st.touches.Load() != touches {
		t.Fatal("Load wrote LastSeenAt within a minute of the last touch")
	}
	// Used every 9 minutes, the session lives past the idle timeout.
	for range 5 {
		c.Advance(9 * time.Minute)
		s, ok := m.Load(r)
		if !ok {
			t.Fatal("an active session went idle")
		}
		if !s.LastSeenAt.Equal(c.Now()) {
			t.Fatalf("LastSeenAt = %v, want %v", s.LastSeenAt, c.Now())
		}
	}
	if st.touches.Load() != touches+5 {
		t.Fatalf("touches = %d, want %d", st.touches.Load(), touches+5)
	}
	c.Advance(10 * time.Minute)
	if _, ok := m.Load(r); ok {
		t.Fatal("an idle session still loads")
	}
}

func TestAbsoluteTimeout(t *testing.T) {
	m, st, c := newTestManager(t, Config{IdleTimeout: time.Hour, AbsoluteTimeout: 3 * time.Hour})
	_, r := signIn(t, m, "oid.tid")
	for range 5 {
		c.Advance(35 * time.Minute)
		if _, ok := m.Load(r); !ok {
			t.Fatal("session gone before its absolute timeout")
		}
	}
	c.Advance(30 * time.Minute) // 3h05m after sign-in
	gets := st.gets.Load()
	if _, ok := m.Load(r); ok {
		t.Fatal("session outlived its absolute timeout")
	}
	if st.gets.Load() != gets {
		t.Fatal("an expired cookie cost a store lookup")
	}
}

func TestStoreFailureIsNoSession(t *testing.T) {
	m, st, _ := newTestManager(t, Config{})
	_, r := signIn(t, m, "oid.tid")
	st.fail.Store(true)
	if _, ok := m.Load(r); ok {
		t.Fatal("a failing store produced a session")
	}
	if _, err := m.Create(httptest.NewRecorder(), r, Session{UserKey: "oid.tid"}); err == nil {
		t.Fatal("Create hid a store failure")
	}
}

func TestDestroy(t *testing.T) {
	m, _, _ := newTestManager(t, Config{})
	s, r := signIn(t, m, "oid.tid")
	w := httptest.NewRecorder()
	got, ok := m.Destroy(w, r)
	if !ok || got.ID != s.ID {
		t.Fatalf("Destroy = %+v, %v", got, ok)
	}
	cs := setCookies(w)
	if len(cs) != 1 || cs[0].Name != DefaultCookieName || cs[0].MaxAge != -1 || !cs[0].Secure || cs[0].Path != "/" {
		t.Fatalf("Destroy did not expire the cookie: %+v", cs)
	}
	if _, ok := m.Load(r); ok {
		t.Fatal("a destroyed session still loads")
	}
	w = httptest.NewRecorder()
	if got, ok := m.Destroy(w, httptest.NewRequest(http.MethodGet, "/", nil)); ok || got != nil {
		t.Fatal("Destroy without a session reported one")
	}
	if len(setCookies(w)) != 1 {
		t.Fatal("Destroy without a session did not expire the cookie")
	}
}

func TestDestroyUser(t *testing.T) {
	m, _, _ := newTestManager(t, Config{})
	_, a1 := signIn(t, m, "alice")
	_, a2 := signIn(t, m, "alice")
	_, b := signIn(t, m, "bob")
	n, err := m.DestroyUser(t.Context(), "alice")
	if err != nil || n != 2 {
		t.Fatalf("DestroyUser = %d, %v", n, err)
	}
	_, ok1 := m.Load(a1)
	_, ok2 := m.Load(a2)
	_, okB := m.Load(b)
	if ok1 || ok2 || !okB {
		t.Fatalf("after DestroyUser: alice %v %v, bob %v", ok1, ok2, okB)
	}
}

func TestConcurrentLoad(t *testing.T) {
	m, _, c := newTestManager(t, Config{})
	_, r := signIn(t, m, "oid.tid")
	done := make(chan bool)
	for i := range 8 {
		go func() {
			for range 200 {
				if i == 0 {
					c.Advance(time.Second)
				}
				if _, ok := m.Load(r.Clone(r.Context())); !ok {
					done <- false
					return
				}
			}
			done <- true
		}()
	}
	for range 8 {
		if !<-done {
			t.Fatal("session lost under concurrent use")
		}
	}
}
