#!/usr/bin/env bash
# The whole test suite: the README's test command, and what CI runs.
#
# 1. installs the Debian packages the end-to-end tests drive when missing
#    (gunicorn, python3-flask, python3-websockets, curl, chromium);
# 2. go vet;
# 3. every unit package under the race detector, then each gateway fuzz
#    target for a bounded number of runs (go test fuzzes one target per invocation;
#    the seed corpus is gateway/testdata/fuzz);
# 4. the end-to-end package alone (-p 1): it builds the real binary and
#    drives it with curl, net/http, gunicorn + Flask and Chromium, and its
#    overload tests measure what the machine's cores can serve, so they must
#    not share them with other test binaries;
# 5. in CI (as root) the Debian package: built, installed, checked, removed.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/test-deps.sh
go vet ./...
go test -race -count=1 -timeout 8m $(go list ./... | grep -v '/test$')
# A count, not a duration: Go 1.26's fuzz coordinator can fail a run whose
# -fuzztime deadline passes while a worker is busy (go.dev/issue/75804).
# Each count is a few seconds on 2 cores.
for run in gateway:FuzzRequestPath=500x gateway:FuzzRewriteRequest=20000x gateway:FuzzRoutePath=30000x \
	listener:FuzzParseProxyHeader=30000x; do
	pkg=${run%%:*} target=${run#*:}
	go test -run='^$' -fuzz="^${target%=*}\$" -fuzztime="${target#*=}" "./$pkg/"
done
go test -count=1 -p 1 -timeout 12m ./test/
./scripts/deb-test.sh
