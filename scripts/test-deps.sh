#!/usr/bin/env bash
# Installs what the end-to-end tests drive, from Debian's packages, when it is
# missing: gunicorn + Flask and Django (real backends), python3-websockets (a
# real WebSocket server and client), curl (a real client), Chromium (renders
# the status page), systemd (systemd-analyze verify for the units in
# contrib/) and etcd-server (a real etcd cluster for the cluster tests).
# Needs root (or sudo) only to install.
set -euo pipefail

missing=()
[ -x /usr/bin/gunicorn ] || missing+=(gunicorn)
/usr/bin/python3 -c 'import flask' 2>/dev/null || missing+=(python3-flask)
/usr/bin/python3 -c 'import websockets' 2>/dev/null || missing+=(python3-websockets)
/usr/bin/python3 -c 'import django' 2>/dev/null || missing+=(python3-django)
command -v systemd-analyze >/dev/null || missing+=(systemd)
command -v curl >/dev/null || missing+=(curl)
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -x /usr/bin/etcd ] || missing+=(etcd-server)

if [ ${#missing[@]} -eq 0 ]; then
	exit 0
fi
echo "installing test dependencies: ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
	sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
