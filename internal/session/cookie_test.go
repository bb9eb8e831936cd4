package session

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"
)

func TestSecureRequest(t *testing.T) {
	tests := []struct {
		target string
		host   string // the Host header, when not the target's
		tls    bool
		want   bool
	}{
		{"http://localhost/", "", false, false},
		{"http://localhost:8080/", "", false, false},
		{"http://LOCALHOST./", "", false, false},
		{"http://127.0.0.1:2015/", "", false, false},
		{"http://[::1]:2015/", "", false, false},
		{"https://localhost/", "", true, true},
		{"http://proxy.example/", "", false, true}, // TLS terminated in front
		{"http://127.0.0.2/", "", false, true},
		{"http://localhost.evil.example/", "", false, true},
		{"https://proxy.example/", "", true, true},
		{"http://[::1]/", "", false, false},
		{"http://x/", "[::1]:", false, false},
		{"http://x/", "::1", false, false},
		{"http://x/", "LocalHost.:80", false, false},
		{"http://x/", "::1:80", false, true},
		{"http://x/", "[::1]x", false, true},
		{"http://x/", "[::1]:80:90", false, true},
		{"http://x/", "[::1", false, true},
		{"http://x/", "localhost]", false, true},
		{"http://x/", "[localhost.evil.example]:80", false, true},
		{"http://x/", "127.0.0.1.evil.example", false, true},
		{"http://x/", "localhosx:80", false, true},
	}
	for _, tt := range tests {
		r := httptest.NewRequest(http.MethodGet, tt.target, nil)
		if tt.host != "" {
			r.Host = tt.host
		}
		if tt.tls {
			r.TLS = &tls.ConnectionState{}
		}
		if got := SecureRequest(r); got != tt.want {
			t.Errorf("SecureRequest(%s, Host %q, tls=%v) = %v, want %v", tt.target, tt.host, tt.tls, got, tt.want)
		}
	}
}

func TestCookieAttributes(t *testing.T) {
	tests := []struct {
		name        string
		cfg         Config
		target      string
		tls         bool
		wantName    string
		wantSecure  bool
		wantSame    http.SameSite
		partitioned bool
	}{
		{"https default", Config{}, "https://proxy.example/", true, DefaultCookieName, true, http.SameSiteLaxMode, false},
		{"behind TLS terminator", Config{}, "http://proxy.example/", false, DefaultCookieName, true, http.SameSiteLaxMode, false},
		{"http localhost", Config{}, "http://localhost:8080/", false, "token_injector", false, http.SameSiteLaxMode, false},
		{"http loopback v6", Config{}, "http://[::1]:8080/", false, "token_injector", false, http.SameSiteLaxMode, false},
		{"strict", Config{SameSite: http.SameSiteStrictMode}, "https://p.example/", true, DefaultCookieName, true, http.SameSiteStrictMode, false},
		{"custom name", Config{CookieName: "sid"}, "http://localhost/", false, "sid", false, http.SameSiteLaxMode, false},
		{"custom __Host- name keeps Secure", Config{CookieName: "__Host-sid"}, "http://localhost/", false, "__Host-sid", true, http.SameSiteLaxMode, false},
		{"partitioned", Config{Partitioned: true, SameSite: http.SameSiteStrictMode}, "https://p.example/", true, DefaultCookieName, true, http.SameSiteNoneMode, true},
		{"partitioned localhost keeps Secure", Config{Partitioned: true}, "http://localhost/", false, DefaultCookieName, true, http.SameSiteNoneMode, true},
		{"none keeps Secure", Config{SameSite: http.SameSiteNoneMode}, "http://localhost/", false, DefaultCookieName, true, http.SameSiteNoneMode, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, _, _ := newTestManager(t, tt.cfg)
			r := httptest.NewRequest(http.MethodGet, tt.target, nil)
			if tt.tls {
				r.TLS = &tls.ConnectionState{}
			}
			w := httptest.NewRecorder()
			if _, err := m.Create(w, r, Session{UserKey: "oid.tid"}); err != nil {
				t.Fatal(err)
			}
			cs := setCookies(w)
			if len(cs) != 1 {
				t.Fatalf("cookies = %v", cs)
			}
			c := cs[0]
			if c.Name != tt.wantName || c.Secure != tt.wantSecure || c.SameSite != tt.wantSame ||
				c.Partitioned != tt.partitioned || !c.HttpOnly || c.Path != "/" || c.Domain != "" ||
				c.MaxAge != int(m.cfg.AbsoluteTimeout.Seconds()) {
				t.Fatalf("cookie = %s", w.Header().Get("Set-Cookie"))
			}
			// The cookie set for a request is the one read back from it.
			if _, ok := m.Load(withCookies(r, w)); !ok {
				t.Fatal("the cookie does not load")
			}
		})
	}
}

func TestStripCookie(t *testing.T) {
	const n = DefaultCookieName
	tests := []struct {
		name string
		in   []string
		want []string // nil: header deleted
	}{
		{"ours, on two lines", []string{n + "=abc", n + "=def"}, nil},
		{"only ours", []string{n + "=abc"}, nil},
		{"first", []string{n + "=abc; a=1; b=2"}, []string{"a=1; b=2"}},
		{"middle", []string{"a=1; " + n + "=abc; b=2"}, []string{"a=1; b=2"}},
		{"last", []string{"a=1;b=2; " + n + "=abc"}, []string{"a=1;b=2"}},
		{"odd spacing kept", []string{"a=1;  b=\"q v\";" + n + "=x;c=3"}, []string{"a=1;  b=\"q v\";c=3"}},
		{"twice", []string{n + "=1; a=1; " + n + "=2"}, []string{"a=1"}},
		{"absent", []string{"a=1;b=2"}, []string{"a=1;b=2"}},
		{"prefix of another name", []string{n + "x=1; x" + n + "=2"}, []string{n + "x=1; x" + n + "=2"}},
		{"value mentions name", []string{"a=" + n}, []string{"a=" + n}},
		{"several lines", []string{"a=1", n + "=x", "b=2; " + n + "=y"}, []string{"a=1", "b=2"}},
		{"empty value", []string{"a=1; " + n + "="}, []string{"a=1"}},
		{"no header", nil, nil},
	}
	m, _, _ := newTestManager(t, Config{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httpsRequest("https://proxy.example/")
			if tt.in != nil {
				r.Header["Cookie"] = append([]string(nil), tt.in...)
			}
			in := r.Header["Cookie"]
			freed := m.StripCookie(r)
			if wantFreed := tt.want == nil && len(tt.in) == 1; (freed != nil) != wantFreed || freed != nil && &freed[0] != &in[0] {
				t.Fatalf("StripCookie returned %q; want the deleted header's own slice only if it was one line", freed)
			}
			got, present := r.Header["Cookie"]
			if tt.want == nil {
				if present {
					t.Fatalf("Cookie = %q, want none", got)
				}
				return
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Cookie = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestStripCookieEveryProxyName: every name of the proxy's namespace goes, whatever the request's scheme, so a
// __Host- cookie does not reach the upstream of http://localhost, nor an unprefixed one that of an HTTPS site.
func TestStripCookieEveryProxyName(t *testing.T) {
	const ours = "token_injector=a; __Host-token_injector=b; __Secure-token_injector=c; token_injector_login_x=d; " +
		"__Host-token_injector_login_y=e; __Secure-token_injector_login_z=f; __HOST-token_injector=g"
	const others = "token_injectorx=1;  xtoken_injector=2;token_injector_other=3; TOKEN_INJECTOR=4; sidx=5; q=\"v;w\""
	tests := []struct {
		name   string
		cfg    Config
		target string
		in     []string
		want   []string // nil: header deleted
	}{
		{"https", Config{}, "https://proxy.example/", []string{ours}, nil},
		{"http localhost", Config{}, "http://localhost:8080/", []string{ours}, nil},
		{"mixed, https", Config{}, "https://proxy.example/", []string{"a=1; " + ours + "; b=2"}, []string{"a=1; b=2"}},
		{"mixed, localhost", Config{}, "http://localhost/", []string{ours + "; b=2", "c=3"}, []string{"b=2", "c=3"}},
		{"look-alikes kept", Config{}, "http://localhost/", []string{others}, []string{others}},
		{"look-alikes among ours", Config{}, "https://proxy.example/", []string{ours + "; " + others},
			[]string{others}},
		{"configured name, both forms", Config{CookieName: "sid"}, "http://localhost/",
			[]string{"sid=1; __Host-sid=2; a=1; " + ours}, []string{"a=1"}},
		{"configured __Host- name on localhost", Config{CookieName: "__Host-sid"}, "http://localhost/",
			[]string{"sid=1; __Host-sid=2; a=1"}, []string{"a=1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, _, _ := newTestManager(t, tt.cfg)
			r := httptest.NewRequest(http.MethodGet, tt.target, nil)
			r.Header["Cookie"] = append([]string(nil), tt.in...)
			m.StripCookie(r)
			got, present := r.Header["Cookie"]
			if tt.want == nil && present || tt.want != nil && !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Cookie = %q, want %q", got, tt.want)
			}
		})
	}
}
