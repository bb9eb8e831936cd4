package testenv

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"

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
