package caddymodule

import "testing"

func TestLoopbackOnly(t *testing.T) {
	for _, tc := range []struct {
		listen []string
		want   bool
	}{
		{nil, false}, // Caddy's default: every interface
		{[]string{":8080"}, false},
		{[]string{"0.0.0.0:8080"}, false},
		{[]string{"10.0.0.5:8080"}, false},
		{[]string{"127.0.0.1:8080"}, true},
		{[]string{"localhost:8080", "[::1]:8080"}, true},
		{[]string{"unix//run/token-injector.sock"}, true},
		{[]string{"127.0.0.1:8080", ":8443"}, false},
	} {
		if got := loopbackOnly(tc.listen); got != tc.want {
			t.Errorf("loopbackOnly(%q) = %v, want %v", tc.listen, got, tc.want)
		}
	}
}
