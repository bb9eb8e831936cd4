package harness

import (
	"encoding/json"
	"fmt"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/tokeninjector/caddy-token-injector/internal/dev/testenv"

	// Only the modules the config uses (the http app, reverse_proxy, the file CA pool, storage) and the plugin:
	// what else a build links does not change a request's path, and it lengthens a fresh clone's first build.
	_ "github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
	_ "github.com/caddyserver/caddy/v2/modules/caddytls"
	_ "github.com/caddyserver/caddy/v2/modules/filestorage"
	_ "github.com/tokeninjector/caddy-token-injector/caddymodule"
)

// Route is one path of the benchmark site.
type Route struct {
	Path     string // path matcher, e.g. "/inj/*"
	Upstream string // dial address of reverse_proxy
	// Injector, when set, puts token_injector before reverse_proxy; nil is a plain reverse_proxy route.
	Injector *Injector
	// FixedAuthorization, when set, puts a bench_fixed_authorization handler (control.go) before reverse_proxy:
	// the session control, which sends upstream this Authorization header and no Cookie.
	FixedAuthorization string
	// Own, when set, is the address of a server that serves this route alone, besides the shared one. A request
	// there meets no other route's matcher, so a measured route and its control cost the same to reach; on the
	// shared server a request first tries every route listed before its own, about 0.5 µs apiece in place.
	Own string
}

// Injector configures a token_injector handler.
type Injector struct {
	Scopes       []string
	Registration map[string]any // from IdP.Registration
	// Capture, when set, also provisions the same handler under this name for Captured (see hotpath.go). Both
	// share the registration's cache, as any two routes with one registration do.
	Capture string
}

// Site is the one Caddy the suite runs: an HTTP server on Listen with Routes.
type Site struct {
	Listen string
	Routes []Route
	// LogFile receives Caddy's logs at INFO; "" discards them.
	LogFile string
	// Redis, when set, is the token_injector app's redis block (the shared tier every route then uses).
	Redis map[string]any
	// StorageDir is Caddy's storage (it keeps nothing for a plain-HTTP site, but would otherwise create its
	// directory in the user's home).
	StorageDir string
}

// JSON is the Caddy config; testenv.Caddy puts admin on a free port and turns config persistence off.
func (s Site) JSON() ([]byte, error) {
	routes, captures := []any{}, []any{}
	servers := map[string]any{}
	for i, r := range s.Routes {
		routes = append(routes, routeJSON(r))
		if r.Own != "" {
			servers[fmt.Sprintf("own%d", i)] = s.serverJSON(r.Own, []any{routeJSON(r)})
		}
		if r.Injector != nil && r.Injector.Capture != "" {
			captures = append(captures, map[string]any{
				"match":  []any{map[string]any{"path": []string{"/_capture/" + r.Injector.Capture}}},
				"handle": []any{map[string]any{"handler": "bench_capture", "name": r.Injector.Capture, "inner": injectorJSON(r.Injector)}},
			})
		}
	}
	// The capture routes come last: no request is meant for them, so none should first try them.
	servers["bench"] = s.serverJSON(s.Listen, append(routes, captures...))
	writer := map[string]any{"output": "discard"}
	if s.LogFile != "" {
		writer = map[string]any{"output": "file", "filename": s.LogFile}
	}
	cfg := map[string]any{
		"storage": map[string]any{"module": "file_system", "root": s.StorageDir},
		"logging": map[string]any{"logs": map[string]any{"default": map[string]any{"writer": writer, "level": "INFO"}}},
		"apps":    map[string]any{"http": map[string]any{"servers": servers}},
	}
	if s.Redis != nil {
		cfg["apps"].(map[string]any)["token_injector"] = map[string]any{"redis": s.Redis}
	}
	return json.Marshal(cfg)
}

func (s Site) serverJSON(listen string, routes []any) map[string]any {
	return map[string]any{
		"listen":          []string{listen},
		"automatic_https": map[string]any{"disable": true},
		// The load generator stands for many clients behind a proxy: X-Forwarded-For names each one, so the
		// sign-in's per-address limit applies per user, as it would behind a load balancer.
		"trusted_proxies": map[string]any{"source": "static", "ranges": []string{"127.0.0.0/8"}},
		"routes":          routes,
	}
}

func routeJSON(r Route) map[string]any {
	proxy := map[string]any{"handler": "reverse_proxy", "upstreams": []any{map[string]any{"dial": r.Upstream}}}
	handle := []any{}
	if r.Injector != nil {
		handle = append(handle, injectorJSON(r.Injector))
	}
	if r.FixedAuthorization != "" {
		handle = append(handle, map[string]any{"handler": "bench_fixed_authorization", "authorization": r.FixedAuthorization})
	}
	return map[string]any{
		"match":    []any{map[string]any{"path": []string{r.Path}}},
		"handle":   append(handle, proxy),
		"terminal": true,
	}
}

func injectorJSON(in *Injector) map[string]any {
	return map[string]any{"handler": "token_injector", "scopes": in.Scopes, "registration": in.Registration}
}

// Load runs s as the process's Caddy config (replacing any other). Goroutines Caddy starts carry the caddy role.
func (s Site) Load(c *testenv.Caddy) error {
	cfg, err := s.JSON()
	if err != nil {
		return err
	}
	WithRole(RoleCaddy, func() { err = c.LoadJSON(cfg) })
	return err
}

// Interface guard: the capture module is a middleware like any other.
var _ caddyhttp.MiddlewareHandler = (*capture)(nil)
