package testenv_test

import (
	"fmt"
	"io"
	"net/http"
	"testing"

	"github.com/tokeninjector/caddy-token-injector/internal/dev/testenv"
)

// The first request after each reload reaches the new config. Without the wait for the old listener, about one
// run in three of this test had a request reset by Caddy's closing socket.
func TestFirstRequestAfterReloadReachesTheNewConfig(t *testing.T) {
	testenv.Integration(t)
	c, err := testenv.NewCaddy(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Stop() })
	addr, err := testenv.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	// A new connection per request, as after a reload every client has one.
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	for i := range 300 {
		want := fmt.Sprintf("config %d", i)
		if err := c.LoadCaddyfile(fmt.Sprintf("http://%s {\n\trespond %q\n}\n", addr, want)); err != nil {
			t.Fatal(err)
		}
		resp, err := client.Get("http://" + addr + "/")
		if err != nil {
			t.Fatalf("reload %d: %v", i, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != want {
			t.Fatalf("reload %d: got %q", i, body)
		}
	}
}
