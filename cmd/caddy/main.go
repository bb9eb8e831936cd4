// Command caddy is a Caddy binary with the token_injector plugin, shaped like the main.go that xcaddy generates.
// It also links the development tools (the Entra emulator and a stub API) that the repository's demo Caddyfile
// uses; a production build with xcaddy --with .../caddymodule leaves them out.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	// plug in Caddy modules here
	_ "github.com/caddyserver/caddy/v2/modules/standard"
	_ "github.com/tokeninjector/caddy-token-injector/caddymodule"
	_ "github.com/tokeninjector/caddy-token-injector/internal/dev/demo"
)

func main() {
	caddycmd.Main()
}
