package caddymodule

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestClientKitIsServedUnderTheSignInPath(t *testing.T) {
	for _, tc := range []struct {
		signIn    *signInSettings
		served    string
		notServed string
	}{
		{nil, "/.auth/client.js", "/auth/client.js"},
		{&signInSettings{}, "/.auth/client.js", "/auth/client.js"},
		{&signInSettings{Path: "/auth"}, "/auth/client.js", "/.auth/client.js"},
	} {
		h := &Handler{kitPath: kitPath(tc.signIn)}
		w := httptest.NewRecorder()
		if !h.serveClientKit(w, httptest.NewRequest(http.MethodGet, tc.served, nil)) ||
			!strings.HasPrefix(w.Header().Get("Content-Type"), "text/javascript") || !strings.Contains(w.Body.String(), "createFetch") {
			t.Errorf("%s: not served (%d %v)", tc.served, w.Code, w.Header())
		}
		if h.serveClientKit(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, tc.notServed, nil)) {
			t.Errorf("%s: served, want it left to the rest of the handler", tc.notServed)
		}
	}
}
