#!/bin/sh
# Install every Debian package orchfs needs to build, test and run its demo.
# Does nothing (and needs no network) when they are all present already.
# usage: scripts/install-deps.sh [--bench]   (--bench adds what `make bench` needs)
set -eu

pkgs="build-essential pkg-config libfuse3-dev fuse3 libsqlite3-dev sqlite3 libjansson-dev
libcurl4-openssl-dev libssl-dev libinotifytools0-dev libcmocka-dev bubblewrap jq procps psmisc python3
clang libclang-rt-14-dev valgrind util-linux passwd sqlite3 git man-db groff-base curl"
[ "${1:-}" = "--bench" ] && pkgs="$pkgs ninja-build redis-server redis-tools make"

missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0

echo "install-deps: installing:$missing" >&2
if [ "$(id -u)" -ne 0 ]; then
	command -v sudo >/dev/null || { echo "install-deps: need root (or sudo) to install:$missing" >&2; exit 1; }
	SUDO=sudo
else
	SUDO=
fi
export DEBIAN_FRONTEND=noninteractive
# an apt cache never filled (fresh machine, container image) needs an update first
if ! $SUDO apt-get install -y --no-install-recommends $missing >/dev/null 2>&1; then
	$SUDO apt-get update -q >/dev/null
	$SUDO apt-get install -y -q --no-install-recommends $missing
fi
