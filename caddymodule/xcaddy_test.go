package caddymodule

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tokeninjector/caddy-token-injector/internal/dev/testenv"
)

// TestXcaddyBuild builds a caddy the way the README's production build does it from a local checkout,
//
//	xcaddy build --with github.com/tokeninjector/caddy-token-injector/caddymodule \
//		--replace github.com/tokeninjector/caddy-token-injector=./path/to/checkout
//
// (xcaddy itself can't be downloaded here): the main.go xcaddy generates, in a module "caddy" with a replace
// directive to this checkout. The binary must list the handler and the global app and adapt a Caddyfile that uses
// the directive; the build must not link any development package (internal/dev: the emulator, the demo handlers).
func TestXcaddyBuild(t *testing.T) {
	testenv.Integration(t) // builds a caddy binary
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatal(err)
	}
	repo, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	caddyVersion := requiredVersion(t, repo, "github.com/caddyserver/caddy/v2")
	dir := t.TempDir()
	const mainGo = `package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	// plug in Caddy modules here
	_ "github.com/caddyserver/caddy/v2/modules/standard"
	_ "github.com/tokeninjector/caddy-token-injector/caddymodule"
)

func main() {
	caddycmd.Main()
}
`
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(mainGo), 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(name string, args ...string) string {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Dir = dir
		// Static and -trimpath, as container/build-rootfs.sh builds it: the image test then reuses this build's cache.
		cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off", "CGO_ENABLED=0")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	run(goBin, "mod", "init", "caddy")
	run(goBin, "mod", "edit", "-replace", "github.com/tokeninjector/caddy-token-injector="+repo)
	run(goBin, "get", "github.com/caddyserver/caddy/v2@"+caddyVersion)
	// A replaced module is required at the zero pseudo-version, as xcaddy does; the proxy is never asked for it.
	run(goBin, "mod", "edit", "-require", "github.com/tokeninjector/caddy-token-injector@v0.0.0-00010101000000-000000000000")
	run(goBin, "mod", "tidy")
	run(goBin, "build", "-trimpath", "-o", "caddy", ".")
	const devPkgs = "github.com/tokeninjector/caddy-token-injector/internal/dev/"
	for _, pkg := range strings.Fields(run(goBin, "list", "-deps", ".")) {
		if strings.HasPrefix(pkg, devPkgs) {
			t.Errorf("a production build links the development package %s", pkg)
		}
	}

	bin := filepath.Join(dir, "caddy")
	modules := run(bin, "list-modules")
	for _, want := range []string{"http.handlers.token_injector", "token_injector"} {
		if !containsLine(modules, want) {
			t.Errorf("list-modules lacks %s", want)
		}
	}
	if containsLine(modules, "http.handlers.entra_emulator") {
		t.Error("a production build must not include the development emulator")
	}
	caddyfile := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(caddyfile, []byte("{\n\ttoken_injector {\n\t\ttenant t\n\t\tclient_id c\n\t\tclient_secret {env.S}\n\t}\n}\n:8080 {\n\ttoken_injector https://graph.microsoft.com/User.Read\n\treverse_proxy https://graph.microsoft.com\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out := run(bin, "adapt", "--config", caddyfile); !strings.Contains(out, `"handler":"token_injector"`) {
		t.Errorf("adapt output lacks the handler:\n%s", out)
	}
}

func containsLine(text, line string) bool {
	for _, l := range strings.Split(text, "\n") {
		if strings.TrimSpace(l) == line {
			return true
		}
	}
	return false
}

func requiredVersion(t *testing.T, repo, module string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repo, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == module {
			return f[1]
		}
	}
	t.Fatalf("go.mod does not require %s", module)
	return ""
}
