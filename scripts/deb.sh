#!/usr/bin/env bash
# Builds the Debian package dist/shardgate_VERSION_ARCH.deb with nfpm (a Go
# module, pinned: go run fetches and builds it): the static binary, the
# systemd units, /etc/shardgate/config.yaml as a conffile, the logrotate
# snippet and the docs. `make deb` runs this. VERSION, ARCH and
# NFPM_VERSION may be set in the environment.
set -euo pipefail
cd "$(dirname "$0")/.."

NFPM_VERSION=${NFPM_VERSION:-v2.45.2}
VERSION=${VERSION:-0.1.0~git$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}
ARCH=${ARCH:-$(go env GOARCH)}
export VERSION ARCH

CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=$VERSION" -o shardgate ./cmd/shardgate
mkdir -p dist
go run "github.com/goreleaser/nfpm/v2/cmd/nfpm@$NFPM_VERSION" pkg --packager deb \
	--config contrib/nfpm.yaml --target dist/
