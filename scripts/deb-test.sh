#!/usr/bin/env bash
# Builds the .deb (scripts/deb.sh), installs it with dpkg -i, checks that the
# installed binary accepts the installed config, and removes (purges) it
# again. It changes the machine's package database, so it runs only as root
# and only where asked to: in CI (CI=true) or with SHARDGATE_DEB_TEST=1.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${CI:-}" != true ] && [ "${SHARDGATE_DEB_TEST:-}" != 1 ]; then
	echo "deb-test: skipped (set SHARDGATE_DEB_TEST=1, or CI=true)"
	exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "deb-test: skipped (needs root for dpkg -i)"
	exit 0
fi
if dpkg-query -W -f='${Status}' shardgate 2>/dev/null | grep -q "install ok"; then
	echo "deb-test: a shardgate package is already installed here; not touching it" >&2
	exit 1
fi

./scripts/deb.sh
deb=$(ls -t dist/shardgate_*.deb | head -1)
echo "deb-test: $deb"
[ "$(dpkg-deb --field "$deb" Package)" = shardgate ] || { echo "deb-test: not the shardgate package" >&2; exit 1; }
contents=$(dpkg-deb --contents "$deb")
for f in ./usr/bin/shardgate ./lib/systemd/system/shardgate.service ./lib/systemd/system/shardgate.socket \
	./etc/shardgate/config.yaml ./etc/logrotate.d/shardgate; do
	grep -q " $f\$" <<<"$contents" || { echo "deb-test: $f missing from the package" >&2; exit 1; }
done
conffiles=$(dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles)
grep -qx /etc/shardgate/config.yaml <<<"$conffiles" \
	|| { echo "deb-test: /etc/shardgate/config.yaml is not a conffile" >&2; exit 1; }

cleanup() { dpkg --purge shardgate >/dev/null 2>&1 || true; }
trap cleanup EXIT
dpkg -i "$deb"
/usr/bin/shardgate -version
/usr/bin/shardgate -check -config /etc/shardgate/config.yaml
getent passwd shardgate >/dev/null || { echo "deb-test: no shardgate user after install" >&2; exit 1; }
# The service's user can read its config.
su -s /bin/sh shardgate -c '/usr/bin/shardgate -check -config /etc/shardgate/config.yaml'
dpkg -r shardgate
[ ! -e /usr/bin/shardgate ] || { echo "deb-test: /usr/bin/shardgate left after dpkg -r" >&2; exit 1; }
dpkg --purge shardgate
[ ! -e /etc/shardgate/config.yaml ] || { echo "deb-test: config left after purge" >&2; exit 1; }
trap - EXIT
echo "deb-test: ok"
