# syntax=docker/dockerfile:1
# The token injector as a sidecar container: docker build -t token-injector .
# Configuration is by environment variables; see container/Caddyfile and the README's "Sidecar container".
ARG GO_VERSION=1.26

# Build: a production caddy, built as xcaddy builds it (no development tools), static.
FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN sh container/build-rootfs.sh /rootfs /src

# Run: nothing but the binary, its config, CA certificates and a non-root user. The root filesystem can be
# read-only: the process writes only under /tmp (mount a volume there).
FROM scratch
COPY --from=build /rootfs/ /
USER 65532:65532
ENV HOME=/tmp XDG_CONFIG_HOME=/tmp/caddy/config XDG_DATA_HOME=/tmp/caddy/data
EXPOSE 5000
ENTRYPOINT ["/usr/bin/caddy"]
CMD ["run", "--config", "/etc/caddy/Caddyfile", "--adapter", "caddyfile"]
