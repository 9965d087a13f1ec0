# Shortcuts for the README's commands. CI runs scripts/test.sh (.ci/run).
GO ?= go

.PHONY: all build test test-deps vet demo bench deb clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w" -o shardgate ./cmd/shardgate

# The whole suite; see scripts/test.sh (the README's test command).
test:
	./scripts/test.sh

test-deps:
	./scripts/test-deps.sh

vet:
	$(GO) vet ./...

demo:
	$(GO) run ./cmd/shardgate demo

# Side by side with HAProxy and nginx on this machine (about 11 minutes;
# needs wrk, haproxy, nginx-light, gunicorn, python3-flask). Not part of test.
bench:
	$(GO) run ./bench -rounds 3 -out bench/results.md

# The Debian package (dist/shardgate_VERSION_ARCH.deb) with nfpm, pinned in
# scripts/deb.sh; scripts/deb-test.sh installs and removes it (CI only).
deb:
	./scripts/deb.sh

clean:
	rm -f shardgate
	rm -rf dist
