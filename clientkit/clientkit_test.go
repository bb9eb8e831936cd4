package clientkit

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestServe(t *testing.T) {
	get := func(method, path string, hdr ...string) (*httptest.ResponseRecorder, bool) {
		r := httptest.NewRequest(method, path, nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			r.Header.Set(hdr[i], hdr[i+1])
		}
		w := httptest.NewRecorder()
		return w, Serve(w, r, "/auth")
	}
	w, ok := get(http.MethodGet, "/auth/client.js")
	if !ok || w.Code != 200 || w.Header().Get("Content-Type") != "text/javascript; charset=utf-8" ||
		!bytes.Contains(w.Body.Bytes(), []byte("export function createFetch")) || w.Header().Get("Cache-Control") != "no-cache" {
		t.Fatalf("client.js: %v %d %v", ok, w.Code, w.Header())
	}
	etag := w.Header().Get("ETag")
	if w, _ := get(http.MethodGet, "/auth/client.js", "If-None-Match", etag); w.Code != http.StatusNotModified || w.Body.Len() != 0 {
		t.Errorf("revalidation: %d", w.Code)
	}
	if w, ok := get(http.MethodGet, "/auth/client.d.ts"); !ok || !bytes.Contains(w.Body.Bytes(), []byte("export declare function createFetch")) {
		t.Error("client.d.ts is not served")
	}
	if w, ok := get(http.MethodHead, "/auth/client.js"); !ok || w.Code != 200 || w.Body.Len() != 0 {
		t.Errorf("HEAD: %v %d", ok, w.Code)
	}
	for _, path := range []string{"/.auth/client.js", "/auth/login", "/auth/client.js/x", "/auth/package.json", "/authclient.js"} {
		if w, ok := get(http.MethodGet, path); ok || w.Code != 200 || w.Body.Len() != 0 {
			t.Errorf("%s: served (%v), want it left to the next handler", path, ok)
		}
	}
	if _, ok := get(http.MethodPost, "/auth/client.js"); ok {
		t.Error("POST served")
	}
}
