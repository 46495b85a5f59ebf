#!/bin/sh
# Installs what meetlite needs to build, run and test on Debian 12 (bookworm). Packages already
# installed are not fetched again; `apt-get update` runs only when something is missing.
set -eu

PKGS="build-essential autoconf automake libtool pkg-config clang clang-format
libevent-dev libssl-dev libpq-dev libcurl4-openssl-dev libjansson-dev libjwt-dev libwebsockets-dev libinih-dev
libev-dev libwebsockets-evlib-ev
libargon2-dev zlib1g-dev check liburing-dev
postgresql postgresql-client
coturn python3 python3-websockets python3-cryptography python3-yaml curl wrk prometheus openssl procps iproute2 nftables
nghttp2-client valgrind
chromium firefox-esr libnss3-tools
nginx libnginx-mod-stream
debhelper dpkg-dev lintian adduser systemd"
# The browser tests run playwright-core (Chromium) and puppeteer-core (Firefox over WebDriver
# BiDi), both from the npm registry and neither downloading a browser, on Node.js 20 or later.
# Machines of this kind come with one; without it, take Debian's. libnss3-tools gives certutil,
# which puts the test CA into a Firefox profile for turns:.
# nginx (with its stream module) runs in front of meetlited in tests/integration/proxy_nginx.py
# and web_nginx.py; promtool (package prometheus) checks /metrics and contrib/prometheus.
# nghttp2-client's h2load (it offers ALPN, wrk does not) and valgrind's callgrind serve
# tests/bench/bench-control.sh (LOADGEN=h2load, INSTR=yes).
command -v node >/dev/null 2>&1 || PKGS="$PKGS nodejs npm"
# tests/integration/k8s_manifests.py renders deploy/k8s with `kubectl kustomize`: Debian's
# kubernetes-client (kubectl 1.20, kustomize v2). A machine that has a kubectl already (another
# package owning /usr/bin/kubectl, which kubernetes-client would collide with) keeps it.
command -v kubectl >/dev/null 2>&1 || PKGS="$PKGS kubernetes-client"

missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0

SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
echo "deps.sh: installing:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
# shellcheck disable=SC2086
$SUDO apt-get install -y -q --no-install-recommends $missing
