package contract

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

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

func TestPrefersJSON(t *testing.T) {
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
		if got := PrefersJSON(r); got != tt.want {
			t.Errorf("PrefersJSON(%v) = %v", tt.headers, got)
		}
	}
}
