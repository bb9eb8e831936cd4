#!/bin/sh
# Builds the token injector image's root filesystem into the directory $1, from the checkout at $2 (default: this
# script's repository). The Dockerfile runs it in its build stage; container/image_test.go runs it on the host.
#
# The caddy binary is built the way xcaddy builds it, without the development tools (the emulator):
#   xcaddy build --with github.com/tokeninjector/caddy-token-injector/caddymodule --replace <module>=<checkout>
# i.e. a generated main module "caddy" with a replace directive, static (CGO_ENABLED=0).
set -eu
out=$1
src=$(cd "${2:-$(dirname "$0")/..}" && pwd)
module=github.com/tokeninjector/caddy-token-injector
caddy_version=$(awk '$1 == "github.com/caddyserver/caddy/v2" { print $2 }' "$src/go.mod")

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat > "$work/main.go" <<'GO'
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	// plug in Caddy modules here
	_ "github.com/caddyserver/caddy/v2/modules/standard"
	_ "github.com/tokeninjector/caddy-token-injector/caddymodule"
)

func main() {
	caddycmd.Main()
}
GO
(
	cd "$work"
	export GOFLAGS=-mod=mod GOWORK=off
	go mod init caddy >/dev/null 2>&1
	go mod edit -replace "$module=$src"
	go get "github.com/caddyserver/caddy/v2@$caddy_version" >/dev/null 2>&1
	# A replaced module is required at the zero pseudo-version, as xcaddy does.
	go mod edit -require "$module@v0.0.0-00010101000000-000000000000"
	go mod tidy >/dev/null 2>&1
	mkdir -p "$out/usr/bin"
	CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$out/usr/bin/caddy" .
)

# The layout: the binary, the default config, CA certificates, a non-root user, and /tmp, the one place the
# process writes (Caddy's config and data directories are under it, see the Dockerfile's XDG_* variables).
mkdir -p "$out/etc/caddy" "$out/etc/ssl/certs" "$out/tmp"
cp "$src/container/Caddyfile" "$out/etc/caddy/Caddyfile"
cp "${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}" "$out/etc/ssl/certs/ca-certificates.crt"
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/tmp:/sbin/nologin\n' >"$out/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' >"$out/etc/group"
chmod 0755 "$out/usr/bin/caddy"
chmod 0644 "$out/etc/caddy/Caddyfile" "$out/etc/ssl/certs/ca-certificates.crt" "$out/etc/passwd" "$out/etc/group"
chmod 1777 "$out/tmp"
