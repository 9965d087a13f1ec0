# The README's commands. `make test` is what CI runs (.ci/run).
GO ?= go

.PHONY: all build test test-deps vet demo bench clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w" -o shardgate ./cmd/shardgate

# The whole suite: unit tests, fuzz seeds, and the end-to-end tests that build
# the binary and drive it with curl, net/http, gunicorn + Flask and Chromium.
# Unit tests run under the race detector; the end-to-end package then runs
# alone (-p 1), because its overload tests measure what two cores can serve
# and must not share them with other test binaries.
test: test-deps vet
	$(GO) test -race -count=1 -timeout 8m $$($(GO) list ./... | grep -v '/test$$')
	$(GO) test -count=1 -p 1 -timeout 8m ./test/

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

clean:
	rm -f shardgate
