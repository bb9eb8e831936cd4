// Command caddy is a Caddy binary with the token_injector plugin, shaped like the main.go that xcaddy generates.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"
	_ "github.com/tokeninjector/caddy-token-injector/caddymodule"
)

func main() {
	caddycmd.Main()
}
