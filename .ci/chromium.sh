#!/usr/bin/env bash
# CI: installs Chromium (Debian's `chromium` package) for the report tests,
# which load the page `planexe report` writes in headless Chromium
# (tests/integration/report.rs). Run it before `cargo test`. Does nothing
# when /usr/bin/chromium is already there.
set -euo pipefail

if [ -x /usr/bin/chromium ]; then
    exit 0
fi

as_root=()
if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null; then
        echo "error: installing chromium needs root (or sudo)" >&2
        exit 1
    fi
    as_root=(sudo)
fi

apt() {
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -y -qq \
        -o Dpkg::Use-Pty=0 "$@" >/dev/null
}

echo "installing chromium (apt-get) for the report tests" >&2
apt update
apt install chromium

if [ ! -x /usr/bin/chromium ]; then
    echo "error: apt-get installed chromium, but /usr/bin/chromium is missing" >&2
    exit 1
fi
