package signin

import (
	"bytes"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/tokeninjector/caddy-token-injector/internal/identity"
	"github.com/tokeninjector/caddy-token-injector/internal/session"
)

// sealedSeeds signs in once and returns a real session cookie value, pre-login cookie value and handoff (bound
// to binding), the values an attacker would start mutating from.
func sealedSeeds(f *testing.F, e *env, binding string) (sess, pre, handoff string) {
	b := newBrowser(f, e.h)
	state := e.login(f, b, "mode=popup&binding="+binding)
	pre = b.cookies[preLoginName(b.request(http.MethodGet, "/", nil), state)]
	b.callback(state, "fuzz-code")
	sess = b.cookies[session.DefaultCookieName]
	handoff, _ = e.h.sealHandoff(identity.User{ObjectID: "o", TenantID: "t"}, bindingHash(binding))
	if sess == "" || pre == "" || handoff == "" {
		f.Fatal("no seeds")
	}
	return sess, pre, handoff
}

// FuzzOpenSealed throws values at every opener: the session cookie (Manager.Open, Manager.Load), the pre-login
// cookie and the hand-off. Seeds are real sealed values. A value opens for one purpose at most, no longer opens
// once any byte of it is changed, a hand-off never opens with another binding, and Load finds a session only
// through a cookie of its name that opens as one.
func FuzzOpenSealed(f *testing.F) {
	e := newEnv(f, Config{}, session.Config{Partitioned: true})
	binding := randomString(24)
	sess, pre, handoff := sealedSeeds(f, e, binding)
	for _, s := range []string{sess, pre, handoff, "", "AQ", "x", sess[:len(sess)-1], pre + "A", strings.Repeat("A", 9000),
		session.DefaultCookieName + "=" + sess + "; " + session.DefaultCookieName + "=x"} {
		f.Add(s)
	}
	purposes := []string{"session", preLoginPurpose, handoffPurpose}
	f.Fuzz(func(t *testing.T, v string) {
		opened := 0
		for _, p := range purposes {
			if _, err := e.sessions.Open(v, p); err == nil {
				opened++
				for _, tampered := range flips(v) {
					if _, err := e.sessions.Open(tampered, p); err == nil {
						t.Fatalf("%q, changed to %q, still opens for %s", v, tampered, p)
					}
				}
			}
		}
		if opened > 1 {
			t.Fatalf("%q opens for %d purposes", v, opened)
		}
		if _, ok := e.h.openPreLogin(v); ok && !opensFor(e, v, preLoginPurpose) {
			t.Fatalf("%q opened as a pre-login cookie", v)
		}
		if _, ok := e.h.openHandoff(v, binding); ok && !opensFor(e, v, handoffPurpose) {
			t.Fatalf("%q opened as a handoff", v)
		}
		if _, ok := e.h.openHandoff(v, binding+"x"); ok {
			t.Fatalf("%q opened as a handoff with another binding", v)
		}
		r := httptest.NewRequest(http.MethodGet, "https://proxy.example/", nil)
		r.Header.Set("Cookie", session.DefaultCookieName+"="+v)
		if _, ok := e.sessions.Load(r); ok && !opensFor(e, v, "session") {
			t.Fatalf("%q loaded as a session", v)
		}
		r.Header.Set("Cookie", v) // the raw header, however it splits
		if _, ok := e.sessions.Load(r); ok && !anyOpens(e, r.CookiesNamed(session.DefaultCookieName)) {
			t.Fatalf("Cookie %q loaded a session", v)
		}
	})
}

func opensFor(e *env, v, purpose string) bool {
	_, err := e.sessions.Open(v, purpose)
	return err == nil
}

func anyOpens(e *env, cs []*http.Cookie) bool {
	for _, c := range cs {
		if opensFor(e, c.Value, "session") {
			return true
		}
	}
	return false
}

// flips returns v with its first, middle and last decoded byte changed.
func flips(v string) []string {
	raw, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil || len(raw) == 0 {
		return nil
	}
	var out []string
	for _, i := range []int{0, len(raw) / 2, len(raw) - 1} {
		b := bytes.Clone(raw)
		b[i] ^= 0x01
		out = append(out, base64.RawURLEncoding.EncodeToString(b))
	}
	return out
}

// FuzzSafeReturnPath: an accepted return path resolves to this origin however it is read: as it is, with
// backslashes as slashes and tabs and newlines dropped (WHATWG URL parsing), and after one percent-decoding.
func FuzzSafeReturnPath(f *testing.F) {
	for _, s := range []string{"/", "/app/doc?id=7", "//evil.example", "/\\evil", "/%2F/evil", "/%5Cevil", "/.//evil",
		"/%2e%2e/evil", "/app?next=https://e.example/", "/a#//b", "/%252F%252Fevil", "https:evil", "/\t/evil"} {
		f.Add(s)
	}
	base, _ := url.Parse("https://proxy.example/app/page")
	whatwg := strings.NewReplacer("\\", "/", "\t", "", "\n", "", "\r", "")
	f.Fuzz(func(t *testing.T, raw string) {
		got, ok := SafeReturnPath(raw)
		if !ok {
			if got != "/" {
				t.Fatalf("refused %q as %q", raw, got)
			}
			return
		}
		if got != raw {
			t.Fatalf("accepted %q as %q", raw, got)
		}
		forms := []string{raw, whatwg.Replace(raw)}
		if d, err := url.PathUnescape(raw); err == nil {
			forms = append(forms, d, whatwg.Replace(d))
		}
		for _, form := range forms {
			u, err := url.Parse(form)
			if err != nil {
				continue // a browser would not leave this origin on a URL it cannot parse either
			}
			if res := base.ResolveReference(u); res.Host != base.Host || res.Scheme != base.Scheme || res.User != nil {
				t.Fatalf("accepted %q resolves (as %q) to %s", raw, form, res)
			}
		}
	})
}

// proxyCookie is the test's own list of the proxy's cookie names.
func proxyCookie(name, configured string) bool {
	for _, p := range []string{"__host-", "__secure-"} {
		if len(name) >= len(p) && strings.ToLower(name[:len(p)]) == p {
			name = name[len(p):]
			break
		}
	}
	configured = strings.TrimPrefix(strings.TrimPrefix(configured, "__Host-"), "__Secure-")
	return name == "token_injector" || strings.HasPrefix(name, "token_injector_login_") ||
		configured != "" && name == configured
}

// otherPairs lists the Cookie header's non-empty, trimmed name=value pairs that are not the proxy's.
func otherPairs(lines []string, configured string) []string {
	var out []string
	for _, line := range lines {
		for _, p := range strings.Split(line, ";") {
			p = strings.Trim(p, " \t\r\n")
			n, _, _ := strings.Cut(p, "=")
			if p != "" && !proxyCookie(strings.Trim(n, " \t\r\n"), configured) {
				out = append(out, p)
			}
		}
	}
	return out
}

// FuzzStripCookie: after StripCookie no proxy cookie is left, as Go parses the header or as a plain split on ";"
// does, and every other cookie is still there, byte for byte and in order.
func FuzzStripCookie(f *testing.F) {
	secure := httptest.NewRequest(http.MethodGet, "https://proxy.example/", nil)
	local := httptest.NewRequest(http.MethodGet, "http://localhost/", nil)
	for _, s := range []string{"a=1; token_injector=x; b=2", "__Host-token_injector=y", "__Secure-token_injector=z; c=3",
		preLoginName(secure, "s1") + "=v; " + preLoginName(local, "s2") + "=w", "__Secure-token_injector_login_q=1;d=4",
		"q=\"v;token_injector=x\"; e=5", "token_injectorx=1; xtoken_injector=2", " ;;token_injector;  f=6 ", "sid=1; __HOST-sid=2"} {
		f.Add(s, "g=7", true, "")
		f.Add(s, "", false, "sid")
	}
	managers := map[string]*session.Manager{}
	for _, name := range []string{"", "sid", "__Host-sid"} {
		m, err := session.NewManager(session.Config{Keys: [][]byte{key()}, CookieName: name}, nil)
		if err != nil {
			f.Fatal(err)
		}
		managers[name] = m
	}
	f.Fuzz(func(t *testing.T, line1, line2 string, https bool, configured string) {
		m, ok := managers[configured]
		if !ok {
			m, configured = managers[""], ""
		}
		target := "http://localhost/"
		if https {
			target = "https://proxy.example/"
		}
		r := httptest.NewRequest(http.MethodGet, target, nil)
		in := []string{line1, line2}
		r.Header["Cookie"] = append([]string(nil), in...)
		m.StripCookie(r)
		out := r.Header["Cookie"]
		for _, c := range r.Cookies() {
			if proxyCookie(c.Name, configured) {
				t.Fatalf("%q survived in %q", c.Name, out)
			}
		}
		for _, line := range out {
			if hasProxyCookie(line, configured) {
				t.Fatalf("a proxy cookie survived in %q", out)
			}
		}
		if want, got := otherPairs(in, configured), otherPairs(out, configured); strings.Join(want, "\x00") != strings.Join(got, "\x00") {
			t.Fatalf("other cookies %q became %q", want, got)
		}
		for _, line := range in {
			if !hasProxyCookie(line, configured) && !contains(out, line) {
				t.Fatalf("line %q without a proxy cookie was changed: %q", line, out)
			}
		}
	})
}

// hasProxyCookie reports whether a plain split of line on ";" finds a proxy cookie.
func hasProxyCookie(line, configured string) bool {
	for _, p := range strings.Split(line, ";") {
		if n, _, _ := strings.Cut(p, "="); proxyCookie(strings.Trim(n, " \t\r\n"), configured) {
			return true
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
