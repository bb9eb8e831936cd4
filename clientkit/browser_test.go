package clientkit_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/caddyserver/caddy/v2/modules/standard" // file_server, reverse_proxy, handle

	_ "github.com/tokeninjector/caddy-token-injector/caddymodule" // the token_injector handler
	"github.com/tokeninjector/caddy-token-injector/internal/dev/entraemu"
	"github.com/tokeninjector/caddy-token-injector/internal/dev/testenv"
)

// installHint is what a machine without the browser tests' tools needs.
const installHint = "apt-get install -y chromium && (cd clientkit && npm ci)"

// nodeTools finds node and the npm packages (node_modules from npm ci), or skips (fails in CI).
func nodeTools(t *testing.T) (node string) {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		testenv.SkipUnlessAllowed(t, "node is not installed (%s)", installHint)
	}
	for _, p := range []string{"node_modules/playwright-core/package.json", "node_modules/@azure/msal-browser/package.json", "node_modules/typescript/package.json"} {
		if _, err := os.Stat(p); err != nil {
			testenv.SkipUnlessAllowed(t, "clientkit/%s is missing: run %s", p, installHint)
		}
	}
	return node
}

// browserTools finds node, the npm packages and Chromium, or skips (fails in CI).
func browserTools(t *testing.T) (node, chromium string) {
	t.Helper()
	node = nodeTools(t)
	chromium = os.Getenv("E2E_CHROMIUM")
	var err error
	if chromium == "" {
		if chromium, err = exec.LookPath("chromium"); err != nil {
			testenv.SkipUnlessAllowed(t, "chromium is not installed (%s)", installHint)
		}
	}
	return node, chromium
}

// TestTypeDeclarations type-checks client.d.ts against the usage sample with TypeScript from npm (pinned).
func TestTypeDeclarations(t *testing.T) {
	node := nodeTools(t)
	out, err := exec.Command(node, "node_modules/typescript/bin/tsc", "--noEmit", "-p", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("tsc --noEmit: %v\n%s", err, out)
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	addr, err := testenv.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(addr)
	return port
}

// e2eTenant is the demo tenant, whose add-in API may also ask for the scopes the scenarios' routes use.
func e2eTenant() entraemu.Config {
	cfg := entraemu.DefaultConfig()
	for i := range cfg.Apps {
		if cfg.Apps[i].ClientID == entraemu.DefaultAddinClientID {
			cfg.Apps[i].RequiredPermissions[entraemu.GraphURI] = []string{"User.Read", "Mail.Read", "Files.Read",
				"Calendars.Read", "Contacts.Read"}
		}
	}
	return cfg
}

// e2eCaddyfile is the proxy the pages call: one route per scenario's scope (so each scenario starts without a
// cached token), sign-in for session mode, the pages and node_modules (MSAL.js) as files.
const e2eCaddyfile = `{
	skip_install_trust
	token_injector {
		authority_host %[1]s
		tenant %[2]s
		client_id %[3]s
		client_secret %[4]s
		audience %[5]s
		tls_trust_pool file %[6]s
		sign_in {
			cookie_secret %[7]s
		}
	}
}

http://localhost:%[8]s {
	bind 127.0.0.1
	@graph path /graph/* /.auth/*
	token_injector @graph https://graph.microsoft.com/User.Read
	token_injector /mail/* https://graph.microsoft.com/Mail.Read
	token_injector /files/* https://graph.microsoft.com/Files.Read
	token_injector /calendar/* https://graph.microsoft.com/Calendars.Read
	token_injector /contacts/* https://graph.microsoft.com/Contacts.Read
	token_injector /api/* api://downstream/Data.Read
	@apis path /graph/* /mail/* /files/* /calendar/* /contacts/* /api/*
	handle @apis {
		reverse_proxy %[9]s
	}
	handle_path /node_modules/* {
		root * %[10]s
		file_server
	}
	# An upstream's answer passed through that looks like the contract, with a sign-in page on another origin.
	handle /forged/* {
		header Content-Type application/json
		respond ` + "`" + `{"error":"interaction_required","reason":"login_required","login_url":"http://127.0.0.1:%[14]s/.auth/login"}` + "`" + ` 401
	}
	handle_path /demo/* {
		root * %[12]s
		file_server
	}
	handle {
		root * %[11]s
		file_server
	}
}

# The add-in framed cross-site: partitioned session cookies (CHIPS), a host page on another site.
http://localhost:%[13]s {
	bind 127.0.0.1
	@graph path /graph/* /.auth/*
	token_injector @graph https://graph.microsoft.com/User.Read {
		sign_in {
			cookie_secret %[7]s
			partitioned
		}
	}
	handle /graph/* {
		reverse_proxy %[9]s
	}
	handle {
		root * %[11]s
		file_server
	}
}

http://127.0.0.1:%[14]s {
	bind 127.0.0.1
	root * %[11]s
	file_server
}
`

// TestBrowser runs clientkit/e2e/run.mjs: real Chromium, real MSAL.js and the kit the proxy serves, against this
// process's Caddy and the emulator, in popup mode and in Office dialog mode (an Office.js stand-in), and 20 session
// sign-ins through popups of which none may be lost. Each scenario is a subtest; a failure names its screenshot.
func TestBrowser(t *testing.T) {
	testenv.Integration(t)
	node, chromium := browserTools(t)
	cfg := e2eTenant()
	env, err := testenv.Start(testenv.Options{Tenant: &cfg})
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	c, err := testenv.NewCaddy(filepath.Join(env.Dir, "caddy"))
	if err != nil {
		t.Fatal(err)
	}
	addr, err := testenv.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(addr)
	framedPort, hostPort := freePort(t), freePort(t)
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	here, _ := os.Getwd()
	caddyfile := fmt.Sprintf(e2eCaddyfile, env.Server.URL, entraemu.DefaultTenantDomain, entraemu.DefaultAddinClientID,
		entraemu.DefaultAddinSecret, entraemu.DefaultAddinIdentifierURI, env.CAFile, base64.StdEncoding.EncodeToString(key),
		port, env.Upstream.URL, filepath.Join(here, "node_modules"), filepath.Join(here, "e2e"),
		filepath.Join(here, "..", "examples", "demo"), framedPort, hostPort)
	if err := c.LoadCaddyfile(caddyfile); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Stop() }()

	shots, err := os.MkdirTemp("", "clientkit-screenshots-")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 110*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "e2e/run.mjs")
	cmd.Env = append(os.Environ(),
		"E2E_BASE=http://localhost:"+port, "E2E_FRAMED=http://localhost:"+framedPort, "E2E_FRAME_HOST=http://127.0.0.1:"+hostPort, "E2E_IDP="+env.Server.URL, "E2E_TENANT="+entraemu.DefaultTenantID,
		"E2E_CLIENT_ID="+entraemu.DefaultSPAClientID, "E2E_SCOPE="+entraemu.DefaultAddinIdentifierURI+"/access_as_user",
		"E2E_CHROMIUM="+chromium, "E2E_SCREENSHOTS="+shots, "NODE_EXTRA_CA_CERTS="+env.CAFile)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	scenarios, failed, finished := 0, 0, false
	lines := bufio.NewScanner(stdout)
	lines.Buffer(make([]byte, 1<<20), 1<<20)
	for lines.Scan() {
		var res struct {
			Scenario, Error, Screenshot string
			OK, Done                    bool
			MS                          int
		}
		if json.Unmarshal(lines.Bytes(), &res) != nil {
			t.Logf("run.mjs: %s", lines.Text())
			continue
		}
		if res.Done {
			finished = true
			continue
		}
		scenarios++
		if !res.OK {
			failed++
		}
		t.Run(res.Scenario, func(t *testing.T) {
			t.Logf("%d ms", res.MS)
			if !res.OK {
				t.Errorf("%s\nscreenshot: %s", res.Error, res.Screenshot)
			}
		})
	}
	err = cmd.Wait()
	t.Logf("browser suite: %d scenarios in %s", scenarios, time.Since(start).Round(100*time.Millisecond))
	switch {
	case ctx.Err() != nil:
		t.Errorf("the browser suite took over %s (screenshots in %s)\n%s", 110*time.Second, shots, stderr.String())
	case !finished || (err != nil && failed == 0):
		t.Errorf("run.mjs ended early: %v\n%s", err, stderr.String())
	case scenarios < 23:
		t.Errorf("only %d scenarios ran", scenarios)
	}
	if failed == 0 && !t.Failed() {
		_ = os.RemoveAll(shots)
	} else {
		t.Logf("screenshots: %s\nbrowser console:\n%s", shots, stderr.String())
	}
}
