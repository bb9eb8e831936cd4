package demo

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// The child half of TestSecondDemoOnAPortFails: run by the test binary itself, in another process.
func TestMain(m *testing.M) {
	if dir := os.Getenv("DEMO_LOCK_CHILD_DIR"); dir != "" {
		if err := lockPort(dir, "9443"); err != nil {
			os.Stdout.WriteString(err.Error())
			os.Exit(3)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestSecondDemoOnAPortFails(t *testing.T) {
	dir := t.TempDir()
	child := func() (int, string) {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "DEMO_LOCK_CHILD_DIR="+dir)
		out, err := cmd.Output()
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return exit.ExitCode(), string(out)
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0, string(out)
	}
	// Nobody holds the lock: another process gets it (and lets go when it exits).
	if code, out := child(); code != 0 {
		t.Fatalf("a lone demo could not lock: exit %d: %s", code, out)
	}
	if err := lockPort(dir, "9443"); err != nil {
		t.Fatal(err)
	}
	// A reload in this process provisions the emulator again: the lock is held already.
	if err := lockPort(dir, "9443"); err != nil {
		t.Fatalf("reacquire in the same process: %v", err)
	}
	code, out := child()
	if code != 3 || !strings.Contains(out, "port 9443") || !strings.Contains(out, "a demo is already running") {
		t.Fatalf("second demo: exit %d, %q; want a clear refusal naming the port", code, out)
	}
	// Another port is another demo.
	if err := lockPort(dir, "9444"); err != nil {
		t.Fatal(err)
	}
}

func TestReadyURLAndBaseURLParse(t *testing.T) {
	tests := []struct {
		name, in  string
		base, rdy string
		wantErr   bool
	}{
		{"both", "entra_emulator {\n base_url https://localhost:9443\n ready_url http://localhost:8080/\n}", "https://localhost:9443", "http://localhost:8080/", false},
		{"ready_url needs an argument", "entra_emulator {\n ready_url\n}", "", "", true},
		{"unknown", "entra_emulator {\n nope\n}", "", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var m Emulator
			err := m.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tt.in))
			if (err != nil) != tt.wantErr || m.BaseURL != tt.base || m.ReadyURL != tt.rdy {
				t.Fatalf("err %v, base %q, ready %q", err, m.BaseURL, m.ReadyURL)
			}
		})
	}
}
