package cors

import (
	"net/url"
	"strings"
	"testing"
)

// FuzzNormalizeOrigin: an accepted origin normalizes to itself again, and is a lower-case http(s) URL with a host
// and nothing else (no userinfo, path, query or fragment), whose port, if any, is not the scheme's default.
func FuzzNormalizeOrigin(f *testing.F) {
	for _, seed := range []string{
		"https://app.example", "https://App.Example:443", "http://localhost:3000/", "http://LOCALHOST:80",
		"https://[::1]:8443", "https://127.0.0.1", "https://xn--bcher-kva.example",
		"https://bücher.example", "https://a.example:", "https://a.example:0443", " https://a.example ",
		"https://user:pw@a.example", "https://a.example/path", "https://a.example?q", "https://a.example#f",
		"https://*.example", "null", "*", "", "file:///etc/passwd", "javascript:alert(1)", "HTTPS://A.EXAMPLE",
		"https://[fe80::1%25eth0]", "https://:443", "https://:8080", "https://a.example\\@b.example", "https:a.example", "//a.example", "https://%C3%A9.example", "ws://a.example",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, origin string) {
		n, err := NormalizeOrigin(origin)
		if err != nil {
			if n != "" {
				t.Fatalf("NormalizeOrigin(%q) = %q with an error", origin, n)
			}
			return
		}
		again, err := NormalizeOrigin(n)
		if err != nil || again != n {
			t.Fatalf("not idempotent: %q -> %q -> %q, %v", origin, n, again, err)
		}
		if n != strings.ToLower(n) {
			t.Fatalf("NormalizeOrigin(%q) = %q, not lower-case", origin, n)
		}
		u, err := url.Parse(n)
		if err != nil {
			t.Fatalf("NormalizeOrigin(%q) = %q, which does not parse: %v", origin, n, err)
		}
		if u.Scheme != "http" && u.Scheme != "https" {
			t.Fatalf("NormalizeOrigin(%q) = %q: scheme %q", origin, n, u.Scheme)
		}
		if u.Hostname() == "" || u.User != nil || u.Path != "" || u.RawPath != "" || u.RawQuery != "" || u.ForceQuery ||
			u.Fragment != "" || u.Opaque != "" {
			t.Fatalf("NormalizeOrigin(%q) = %q is not scheme://host[:port]: %#v", origin, n, u)
		}
		if n != u.Scheme+"://"+u.Host {
			t.Fatalf("NormalizeOrigin(%q) = %q, which is more than %s://%s", origin, n, u.Scheme, u.Host)
		}
		if (u.Scheme == "https" && u.Port() == "443") || (u.Scheme == "http" && u.Port() == "80") {
			t.Fatalf("NormalizeOrigin(%q) = %q keeps the default port", origin, n)
		}
	})
}
