package signin

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestHandlerAnswersPreflight(t *testing.T) {
	e := newEnv(t, Config{}, nilSession())
	w := httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodOptions, "https://proxy.example/.auth/logout", nil)
	r.Header.Set("Origin", "https://app.example")
	r.Header.Set("Access-Control-Request-Method", "POST")
	r.URL.Path = "/.auth/logout"
	e.h.ServeHTTP(w, r)
	if w.Code != http.StatusNoContent || w.Header().Get("Access-Control-Allow-Origin") != "https://app.example" {
		t.Fatalf("preflight = %d %v", w.Code, w.Header())
	}
}
