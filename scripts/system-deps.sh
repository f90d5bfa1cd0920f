#!/usr/bin/env bash
# System packages the root test tier needs (real users and sudo) and the browser the HTML report
# is checked in (Debian's Chromium and ChromeDriver). Run as root; idempotent.
set -euo pipefail
missing=()
command -v sudo >/dev/null 2>&1 || missing+=(sudo)
[ -e /usr/lib/x86_64-linux-gnu/libseccomp.so.2 ] || [ -e /usr/lib/aarch64-linux-gnu/libseccomp.so.2 ] \
    || missing+=(libseccomp2)
/usr/bin/python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -x /usr/bin/chromedriver ] || missing+=(chromium-driver)
if [ "${#missing[@]}" -gt 0 ]; then
    echo "elspeth: installing system packages: ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
