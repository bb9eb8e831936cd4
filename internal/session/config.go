// Package session keeps the proxy's own browser sessions: a sealed cookie that carries only a random session ID,
// and a server-side store that maps the ID to the signed-in user. Tokens never reach the browser; the session only
// names the user whose server-side token cache the proxy may use.
package session

import (
	"fmt"
	"net/http"
	"time"

	"github.com/tokeninjector/caddy-token-injector/internal/seal"
)

// Defaults applied by NewManager to zero Config fields.
const (
	DefaultCookieName         = "__Host-token_injector"
	DefaultInsecureCookieName = "token_injector" // plain http://localhost, where __Host- (which needs Secure) is refused
	DefaultIdleTimeout        = 8 * time.Hour
	DefaultAbsoluteTimeout    = 7 * 24 * time.Hour
	DefaultMaxSessions        = 100000
)

// Config configures a Manager. Zero values take the defaults noted.
type Config struct {
	// Keys are 32-byte AES-256 keys. Keys[0] seals; every key opens, so a new key can be put first while the old
	// one still opens existing cookies. Required.
	Keys [][]byte
	// CookieName defaults to "__Host-token_injector" when the cookie can be Secure, else "token_injector".
	CookieName string
	// SameSite defaults to Lax.
	SameSite http.SameSite
	// Partitioned adds the CHIPS "Partitioned" attribute and forces SameSite=None and Secure, for add-ins framed
	// cross-site by Office on the web.
	Partitioned bool
	// IdleTimeout ends a session unused this long. Default 8h.
	IdleTimeout time.Duration
	// AbsoluteTimeout ends a session this long after sign-in, used or not. Default 7 days.
	AbsoluteTimeout time.Duration
	// MaxSessions bounds the in-memory store. Default 100000.
	MaxSessions int
	Now         func() time.Time
}

// NewManager checks cfg, applies its defaults and returns a Manager over store; a nil store means
// NewMemoryStore(cfg.MaxSessions, cfg.Now). Errors name the offending configuration field.
func NewManager(cfg Config, store Store) (*Manager, error) {
	if err := checkKeys(cfg.Keys); err != nil {
		return nil, err
	}
	if cfg.CookieName != "" && (&http.Cookie{Name: cfg.CookieName, Value: "x"}).Valid() != nil {
		return nil, fmt.Errorf("cookie_name: %q is not a valid cookie name", cfg.CookieName)
	}
	switch {
	case cfg.IdleTimeout < 0:
		return nil, fmt.Errorf("idle_timeout: must not be negative, got %s", cfg.IdleTimeout)
	case cfg.AbsoluteTimeout < 0:
		return nil, fmt.Errorf("absolute_timeout: must not be negative, got %s", cfg.AbsoluteTimeout)
	case cfg.MaxSessions < 0:
		return nil, fmt.Errorf("max_sessions: must not be negative, got %d", cfg.MaxSessions)
	case cfg.SameSite < 0 || cfg.SameSite > http.SameSiteNoneMode:
		return nil, fmt.Errorf("same_site: unknown value %d", cfg.SameSite)
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.AbsoluteTimeout == 0 {
		cfg.AbsoluteTimeout = DefaultAbsoluteTimeout
	}
	if cfg.AbsoluteTimeout < time.Second {
		return nil, fmt.Errorf("absolute_timeout: %s is shorter than a second", cfg.AbsoluteTimeout)
	}
	if cfg.MaxSessions == 0 {
		cfg.MaxSessions = DefaultMaxSessions
	}
	if cfg.SameSite == 0 || cfg.SameSite == http.SameSiteDefaultMode {
		cfg.SameSite = http.SameSiteLaxMode
	}
	if cfg.Partitioned {
		cfg.SameSite = http.SameSiteNoneMode
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if store == nil {
		store = NewMemoryStore(cfg.MaxSessions, cfg.Now)
	}
	keys, err := seal.New(cfg.Keys)
	if err != nil {
		return nil, fmt.Errorf("cookie_secret: %w", err)
	}
	opened, err := newOpened(cfg.MaxSessions)
	if err != nil {
		return nil, err
	}
	m := &Manager{cfg: cfg, store: store, keys: keys, opened: opened, cookieAD: additionalData(cookiePurpose)}
	m.ends, _ = store.(EndCounter)
	return m, nil
}
