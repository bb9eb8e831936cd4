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

func TestStripCallbackReferer(t *testing.T) {
	h := &Handler{cfg: Config{Path: "/.auth"}, callbackPath: "/.auth/callback"}
	for ref, keep := range map[string]bool{
		"https://app.example/.auth/callback?code=abc&state=x": false,
		"https://app.example/.auth/callbackx":                 false,
		"%zz":                                                 false,
		"https://app.example/.auth/%63allback?code=abc":       false, // the parsed path is the callback's
		"https://app.example/.auth/me":                        true,
		"https://app.example/page?next=%2Fhome":               true,
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
