#!/usr/bin/env bash
# Prepare this machine (root, Debian bookworm) to build and run the Elspeth image with Podman:
#   1. install podman, runc, debootstrap (and uidmap) when missing;
#   2. write /etc/containers/containers.conf (runc; ulimits that fit a small CI machine);
#   3. build a plain Debian bookworm base image with debootstrap and import it into podman.
# No image registry is reachable from these machines, so the base image is made locally; its tarball
# is cached under /var/cache/elspeth-container/ so later runs on the same machine reuse it.
# Idempotent. Prints the base image name on stdout (everything else goes to stderr).
#
# Environment:
#   ELSPETH_BASE_IMAGE   name of the local base image   (default: localhost/elspeth-base:bookworm)
#   ELSPETH_BASE_CACHE   cache directory                (default: /var/cache/elspeth-container)
#   ELSPETH_BASE_VERSION cache key; change it to rebuild (default: bookworm-minbase-<ISO year-week>)
#   ELSPETH_DEBIAN_MIRROR                               (default: http://deb.debian.org/debian)
set -euo pipefail

BASE_IMAGE="${ELSPETH_BASE_IMAGE:-localhost/elspeth-base:bookworm}"
CACHE_DIR="${ELSPETH_BASE_CACHE:-/var/cache/elspeth-container}"
BASE_VERSION="${ELSPETH_BASE_VERSION:-bookworm-minbase-$(date -u +%G-w%V)}"
MIRROR="${ELSPETH_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
CONTAINERS_CONF=/etc/containers/containers.conf

log() { echo "container-setup: $*" >&2; }

if [ "$(id -u)" != 0 ]; then
    log "must run as root (installs packages, writes $CONTAINERS_CONF, runs debootstrap)"
    exit 1
fi

install_packages() {
    local missing=()
    command -v podman >/dev/null 2>&1 || missing+=(podman)
    command -v runc >/dev/null 2>&1 || missing+=(runc)
    command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
    command -v newuidmap >/dev/null 2>&1 || missing+=(uidmap)
    if [ "${#missing[@]}" -gt 0 ]; then
        log "installing ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
}

write_containers_conf() {
    if [ -f "$CONTAINERS_CONF" ] && grep -q '^# elspeth: managed' "$CONTAINERS_CONF"; then
        return
    fi
    if [ -f "$CONTAINERS_CONF" ]; then
        log "keeping existing $CONTAINERS_CONF as $CONTAINERS_CONF.elspeth-orig"
        cp -p "$CONTAINERS_CONF" "$CONTAINERS_CONF.elspeth-orig"
    fi
    mkdir -p "$(dirname "$CONTAINERS_CONF")"
    cat >"$CONTAINERS_CONF" <<'EOF'
# elspeth: managed by scripts/container-setup.sh
# runc: the OCI runtime known to work on these machines. The ulimits keep containers within what
# an unprivileged CI machine grants (podman's default would copy the host's, which may be higher
# than a nested container may set).
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]

[engine]
runtime = "runc"
EOF
    log "wrote $CONTAINERS_CONF"
}

ROOTFS=""
remove_rootfs() { if [ -n "$ROOTFS" ]; then rm -rf "$ROOTFS"; fi; }
trap remove_rootfs EXIT

build_base_tarball() {
    local tarball="$1"
    ROOTFS="$(mktemp -d /var/tmp/elspeth-rootfs.XXXXXX)"
    log "debootstrap --variant=minbase bookworm (a few minutes, once per cache key)"
    debootstrap --variant=minbase bookworm "$ROOTFS" "$MIRROR" >&2
    rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/*
    tar -C "$ROOTFS" -c . >"$tarball.partial"
    mv "$tarball.partial" "$tarball"
    remove_rootfs
    ROOTFS=""
}

ensure_base_image() {
    local tarball="$CACHE_DIR/$BASE_VERSION.tar" label
    label="$(podman image inspect --format '{{ index .Labels "org.elspeth.base-version" }}' \
        "$BASE_IMAGE" 2>/dev/null || true)"
    if [ "$label" = "$BASE_VERSION" ]; then
        return
    fi
    mkdir -p "$CACHE_DIR"
    chmod 0755 "$CACHE_DIR"
    if [ ! -s "$tarball" ]; then
        build_base_tarball "$tarball"
    else
        log "reusing cached $tarball"
    fi
    podman import --change "LABEL org.elspeth.base-version=$BASE_VERSION" \
        --change 'CMD ["/bin/bash"]' - "$BASE_IMAGE" <"$tarball" >/dev/null
    log "imported $BASE_IMAGE from $tarball"
}

install_packages
write_containers_conf
ensure_base_image
echo "$BASE_IMAGE"
