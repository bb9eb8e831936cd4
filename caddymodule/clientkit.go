package caddymodule

import (
	"net/http"

	"github.com/tokeninjector/caddy-token-injector/clientkit"
)

// defaultKitPath is where the client kit is served when sign_in does not name another path.
const defaultKitPath = "/.auth"

// kitPath is where this route serves the client kit (client.js, client.d.ts): under the sign-in path, so the one
// matcher that sends /.auth/* to the handler also serves the kit.
func kitPath(si *signInSettings) string {
	if si != nil && si.Path != "" {
		return si.Path
	}
	return defaultKitPath
}

// serveClientKit answers a request for the kit; false when r is not one.
func (h *Handler) serveClientKit(w http.ResponseWriter, r *http.Request) bool {
	return clientkit.Serve(w, r, h.kitPath)
}
