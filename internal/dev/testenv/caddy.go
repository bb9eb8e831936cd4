package testenv

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"

	// The Caddyfile adapter.
	_ "github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
)

// Caddy is the process's one in-process Caddy (Caddy runs one config per process). Its admin endpoint listens on
// a free port, never the demo's 2019, and its config and data directories are under Dir, so tests never read or
// write the user's autosave.json or certificates.
type Caddy struct {
	Dir       string
	AdminAddr string
}

var caddyMu sync.Mutex

// NewCaddy points Caddy's directories at dir (created if needed) for the whole process: XDG_CONFIG_HOME and
// XDG_DATA_HOME, and the autosave path Caddy computed at start-up.
func NewCaddy(dir string) (*Caddy, error) {
	admin, err := FreeAddr()
	if err != nil {
		return nil, err
	}
	for _, v := range []struct{ env, sub string }{{"XDG_CONFIG_HOME", "config"}, {"XDG_DATA_HOME", "data"}} {
		p := filepath.Join(dir, v.sub)
		if err := os.MkdirAll(p, 0o700); err != nil {
			return nil, err
		}
		if err := os.Setenv(v.env, p); err != nil {
			return nil, err
		}
	}
	caddy.ConfigAutosavePath = filepath.Join(caddy.AppConfigDir(), "autosave.json")
	return &Caddy{Dir: dir, AdminAddr: admin}, nil
}

// LoadCaddyfile adapts text and runs it (see LoadJSON).
func (c *Caddy) LoadCaddyfile(text string) error {
	cfg, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(text), map[string]any{"filename": "Caddyfile"})
	if err != nil {
		return fmt.Errorf("adapting the Caddyfile: %w", err)
	}
	for _, w := range warnings {
		if w.Message != "" {
			fmt.Fprintf(os.Stderr, "caddyfile warning: %s:%d: %s\n", w.File, w.Line, w.Message)
		}
	}
	return c.LoadJSON(cfg)
}

// LoadJSON runs cfg as the process's config, replacing the running one as `caddy reload` would (an identical
// config is a no-op), and returns once the old config's listeners have closed. Whatever cfg says, admin listens on
// c.AdminAddr and the config is not persisted.
func (c *Caddy) LoadJSON(cfg []byte) error {
	var m map[string]any
	if err := json.Unmarshal(cfg, &m); err != nil {
		return err
	}
	m["admin"] = map[string]any{"listen": c.AdminAddr, "config": map[string]any{"persist": false}}
	cfg, err := json.Marshal(m)
	if err != nil {
		return err
	}
	caddyMu.Lock()
	defer caddyMu.Unlock()
	if err := caddy.Load(cfg, false); err != nil {
		return fmt.Errorf("caddy.Load: %w", err)
	}
	awaitOldListenersClosed(listenPorts(m))
	return nil
}

// Stop unloads the running config.
func (c *Caddy) Stop() error {
	caddyMu.Lock()
	defer caddyMu.Unlock()
	return caddy.Stop()
}

// awaitOldListenersClosed returns once no port in ports has two listening sockets, or after a second.
//
// A reload binds the new config's listener beside the old one (SO_REUSEPORT) and caddy.Load returns before the old
// one has closed. Until it closes the kernel gives it a share of new connections, and as it closes it resets those
// still in its backlog: a test's first request after a reload would fail with "connection reset by peer" before
// reaching any handler. Waiting here keeps that race of Caddy's and the kernel's out of every test, where retrying
// requests could hide a connection the proxy itself dropped. Without /proc (not Linux) it returns at once.
func awaitOldListenersClosed(ports map[int]bool) {
	deadline := time.Now().Add(time.Second)
	for len(ports) > 0 && sharedListeners(ports) && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
}

// sharedListeners reports whether some address with a port in ports has two TCP listening sockets.
func sharedListeners(ports map[int]bool) bool {
	seen := map[string]bool{}
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		f, err := os.Open(table)
		if err != nil {
			return false
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text()) // sl local_address rem_address st ...
			if len(fields) < 4 || fields[3] != "0A" {
				continue // not LISTEN
			}
			local := fields[1]
			port, err := strconv.ParseInt(local[strings.LastIndexByte(local, ':')+1:], 16, 32)
			if err != nil || !ports[int(port)] {
				continue
			}
			if seen[local] {
				f.Close()
				return true
			}
			seen[local] = true
		}
		f.Close()
	}
	return false
}

// listenPorts returns the TCP ports the HTTP servers of a JSON config listen on (ranges are left out).
func listenPorts(cfg map[string]any) map[int]bool {
	ports := map[int]bool{}
	apps, _ := cfg["apps"].(map[string]any)
	httpApp, _ := apps["http"].(map[string]any)
	servers, _ := httpApp["servers"].(map[string]any)
	for _, srv := range servers {
		s, _ := srv.(map[string]any)
		listen, _ := s["listen"].([]any)
		for _, l := range listen {
			addr, _ := l.(string)
			if port, err := strconv.Atoi(addr[strings.LastIndexByte(addr, ':')+1:]); err == nil {
				ports[port] = true
			}
		}
	}
	return ports
}
