package signin

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestSafeReturnPath(t *testing.T) {
	safe := []string{
		"/",
		"/app",
		"/app/doc?id=7&x=a%20b",
		"/app?next=https://elsewhere.example/", // only the path decides where the browser goes
		"/caf%C3%A9",
		"/a/b/c.html#section",
		"/javascript:alert(1)", // a path on this origin
		"/api/v1/items;matrix=1",
	}
	for _, s := range safe {
		if got, ok := SafeReturnPath(s); !ok || got != s {
			t.Errorf("SafeReturnPath(%q) = %q, %v; want it kept", s, got, ok)
		}
	}
	attacks := []string{
		"",
		"https://evil.example/",
		"http://evil.example",
		"HtTpS://evil.example",
		"//evil.example",
		"///evil.example",
		"////evil.example",
		"/\\evil.example",
		"\\\\evil.example",
		"\\/evil.example",
		"/\\/evil.example",
		"/path\\to",
		"%2F%2Fevil.example",
		"%2f%2fevil.example",
		"/%2F/evil.example",
		"/%2f%2fevil.example",
		"/%5Cevil.example",
		"/%5cevil.example",
		"/app%5C..%5C",
		"/%252F%252Fevil.example", // double encoded
		"/%25252F%25252Fevil.example",
		"/%2525252F%2525252Fevil.example", // too deep
		"javascript:alert(1)",
		"JaVaScRiPt:alert(1)",
		"data:text/html,<script>alert(1)</script>",
		"vbscript:msgbox",
		"https:evil.example",
		"https:/evil.example",
		"/\t/evil.example",
		"/\n/evil.example",
		"/%09/evil.example",
		"/%0d%0aSet-Cookie:x=y",
		"/app\r\nLocation: https://evil.example",
		" /app",
		"/ /evil",
		"/app\x00",
		"/%00",
		"\uff0f\uff0fevil.example",        // fullwidth solidus
		"/\uff0fevil.example",             // raw non-ASCII
		"/%EF%BC%8F%EF%BC%8Fevil.example", // fullwidth solidus, encoded
		"/%E2%88%95evil",                  // division slash
		"/%E2%80%A8",                      // line separator
		"/./evil",
		"/.//evil.example",
		"/app/../../evil",
		"/%2e%2e/evil",
		"/%2E/%2Fevil.example",
		"evil.example",
		"?/evil",
		"#/evil",
		"/%zz",
		"/" + string(make([]byte, 2100)),
	}
	if len(attacks) < 25 {
		t.Fatal("too few attack strings")
	}
	for _, s := range attacks {
		if got, ok := SafeReturnPath(s); ok || got != "/" {
			t.Errorf("SafeReturnPath(%q) = %q, %v; want (\"/\", false)", s, got, ok)
		}
	}
}

func TestIsNavigation(t *testing.T) {
	const browserAccept = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8"
	tests := []struct {
		name    string
		method  string
		headers map[string]string
		want    bool
	}{
		{"navigate", "GET", map[string]string{"Sec-Fetch-Mode": "navigate", "Accept": browserAccept}, true},
		{"navigate without Accept", "GET", map[string]string{"Sec-Fetch-Mode": "navigate"}, true},
		{"HEAD navigate", "HEAD", map[string]string{"Sec-Fetch-Mode": "navigate"}, true},
		{"POST navigate (form)", "POST", map[string]string{"Sec-Fetch-Mode": "navigate"}, false},
		{"fetch cors", "GET", map[string]string{"Sec-Fetch-Mode": "cors", "Accept": browserAccept}, false},
		{"fetch same-origin", "GET", map[string]string{"Sec-Fetch-Mode": "same-origin", "Accept": "text/html"}, false},
		{"no-cors", "GET", map[string]string{"Sec-Fetch-Mode": "no-cors"}, false},
		{"websocket", "GET", map[string]string{"Sec-Fetch-Mode": "websocket"}, false},
		{"XHR header", "GET", map[string]string{"Sec-Fetch-Mode": "navigate", "X-Requested-With": "XMLHttpRequest"}, false},
		{"old browser page", "GET", map[string]string{"Accept": browserAccept}, true},
		{"old browser XHR", "GET", map[string]string{"Accept": browserAccept, "X-Requested-With": "XMLHttpRequest"}, false},
		{"JSON client", "GET", map[string]string{"Accept": "application/json"}, false},
		{"JSON preferred", "GET", map[string]string{"Accept": "application/json, text/html;q=0.9"}, false},
		{"HTML preferred", "GET", map[string]string{"Accept": "text/html;q=1, application/json;q=0.5"}, true},
		{"equal preference", "GET", map[string]string{"Accept": "text/html, application/json"}, false},
		{"curl", "GET", map[string]string{"Accept": "*/*"}, false},
		{"text wildcard", "GET", map[string]string{"Accept": "text/*, application/json;q=0.1"}, true},
		{"html refused", "GET", map[string]string{"Accept": "text/html;q=0, */*"}, false},
		{"nothing", "GET", map[string]string{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(tt.method, "https://proxy.example/app", nil)
			for k, v := range tt.headers {
				r.Header.Set(k, v)
			}
			if got := IsNavigation(r); got != tt.want {
				t.Fatalf("IsNavigation = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestWantsJSON(t *testing.T) {
	tests := []struct {
		headers map[string]string
		want    bool
	}{
		{map[string]string{"Accept": "application/json"}, true},
		{map[string]string{"Sec-Fetch-Mode": "cors"}, true},
		{map[string]string{"X-Requested-With": "XMLHttpRequest"}, true},
		{map[string]string{"Sec-Fetch-Mode": "navigate", "Accept": "application/json"}, false},
		{map[string]string{"Accept": "text/html"}, false},
		{map[string]string{}, false},
	}
	for _, tt := range tests {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		for k, v := range tt.headers {
			r.Header.Set(k, v)
		}
		if got := wantsJSON(r); got != tt.want {
			t.Errorf("wantsJSON(%v) = %v", tt.headers, got)
		}
	}
}

func TestStripCallbackReferer(t *testing.T) {
	h := &Handler{cfg: Config{Path: "/.auth"}}
	for ref, keep := range map[string]bool{
		"https://app.example/.auth/callback?code=abc&state=x": false,
		"https://app.example/.auth/callbackx":                 false,
		"%zz":                                                 false,
		"https://app.example/page":                            true,
		"https://login.microsoftonline.com/":                  true,
	} {
		r := httptest.NewRequest(http.MethodGet, "https://app.example/graph/me", nil)
		r.Header.Set("Referer", ref)
		h.StripCallbackReferer(r)
		if got := r.Header.Get("Referer") != ""; got != keep {
			t.Errorf("Referer %q kept = %v, want %v", ref, got, keep)
		}
	}
}
