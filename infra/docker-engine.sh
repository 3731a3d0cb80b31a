#!/usr/bin/env bash
# A Docker engine and a Python base image for the image and compose tests, on a machine that
# has neither running and can reach no image registry (as here, and in CI).
#
#   infra/docker-engine.sh up     prints the environment for the tests (eval it), e.g.
#                                 DOCKER_HOST=unix:///run/telephony-docker/docker.sock
#                                 TELEPHONY_TEST_PYTHON_IMAGE=telephony-base:bookworm
#                                 or TELEPHONY_DOCKER_SKIP='why not' where it cannot
#   infra/docker-engine.sh down   stops the engine if `up` started it (nothing else)
#
# `up` uses a running engine when there is one. Otherwise, as root with apt-get, it installs
# Debian's docker.io and debootstrap, starts dockerd on its own socket with no bridge and no
# iptables (containers use the host network, so everything stays on 127.0.0.1), and builds
# the base image from Debian packages (debootstrap minbase + python3, this machine's CA bundle
# so that pip reaches the package index through the same TLS set-up). The engine's data and
# the base image are kept under /var/lib/telephony-docker between runs.
set -euo pipefail

RUN_DIR=/run/telephony-docker
DATA_DIR=/var/lib/telephony-docker
SOCKET="unix://$RUN_DIR/docker.sock"
BASE_IMAGE=telephony-base:bookworm
MIRROR=${TELEPHONY_DEBIAN_MIRROR:-http://deb.debian.org/debian}

skip() { printf "export TELEPHONY_DOCKER_SKIP=%q\n" "$1"; exit 0; }
log() { echo "docker-engine: $*" >&2; }

engine_ok() { DOCKER_HOST="$1" docker info >/dev/null 2>&1; }

up() {
    command -v docker >/dev/null 2>&1 || [ "$(id -u)" = 0 ] || skip "no docker command, and not root to install one"
    if [ -z "${DOCKER_HOST:-}" ] && command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
        log "using the running Docker engine"
        ensure_base_image ""
        return
    fi
    if engine_ok "$SOCKET"; then
        log "using the engine started earlier on $SOCKET"
    else
        [ "$(id -u)" = 0 ] || skip "no Docker engine is running, and starting one needs root"
        command -v apt-get >/dev/null 2>&1 || skip "no Docker engine is running, and no apt-get to install one"
        mkdir -p "$RUN_DIR" "$DATA_DIR"
        if ! command -v dockerd >/dev/null 2>&1 || ! command -v debootstrap >/dev/null 2>&1 || ! command -v docker-compose >/dev/null 2>&1; then
            log "installing docker.io, docker-compose and debootstrap (Debian packages)"
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker.io docker-compose debootstrap >"$DATA_DIR/apt.log" 2>&1 \
                || skip "apt-get could not install docker.io, docker-compose and debootstrap (see $DATA_DIR/apt.log)"
        fi
        log "starting dockerd on $SOCKET (host network only)"
        nohup dockerd --host "$SOCKET" --bridge=none --iptables=false --ip6tables=false \
            --data-root "$DATA_DIR/engine" --exec-root "$RUN_DIR/exec" --pidfile "$RUN_DIR/docker.pid" \
            >"$RUN_DIR/dockerd.log" 2>&1 &
        touch "$RUN_DIR/started-by-us"
        for _ in $(seq 60); do engine_ok "$SOCKET" && break; sleep 0.5; done
        engine_ok "$SOCKET" || skip "dockerd did not start: $(tail -n 3 "$RUN_DIR/dockerd.log" | tr '\n' ' ')"
    fi
    echo "export DOCKER_HOST=$SOCKET"
    ensure_base_image "$SOCKET"
}

ensure_base_image() {
    local host=$1
    if DOCKER_HOST=${host:-${DOCKER_HOST:-}} docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
        echo "export TELEPHONY_TEST_PYTHON_IMAGE=$BASE_IMAGE"
        return
    fi
    if [ "$(id -u)" != 0 ] || ! command -v debootstrap >/dev/null 2>&1; then
        log "no $BASE_IMAGE (needs root and debootstrap): the tests try to pull python:3.12-slim"
        return
    fi
    local root
    root=$(mktemp -d /var/tmp/telephony-rootfs.XXXXXX)
    log "building $BASE_IMAGE with debootstrap (about a minute, once)"
    if ! debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$root" "$MIRROR" \
        >"$DATA_DIR/debootstrap.log" 2>&1; then
        rm -rf "$root"
        skip "debootstrap could not build a base image from $MIRROR (see $DATA_DIR/debootstrap.log)"
    fi
    ln -sf python3 "$root/usr/bin/python"
    # pip inside the image trusts what this machine trusts (a TLS-inspecting proxy's CA too).
    cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
    printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' >"$root/etc/pip.conf"
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
    tar -C "$root" -c . | DOCKER_HOST=${host:-${DOCKER_HOST:-}} docker import - "$BASE_IMAGE" >&2
    rm -rf "$root"
    echo "export TELEPHONY_TEST_PYTHON_IMAGE=$BASE_IMAGE"
}

down() {
    if [ -f "$RUN_DIR/started-by-us" ] && [ -f "$RUN_DIR/docker.pid" ]; then
        kill "$(cat "$RUN_DIR/docker.pid")" 2>/dev/null || true
        for _ in $(seq 40); do [ -f "$RUN_DIR/docker.pid" ] || break; sleep 0.25; done
        rm -f "$RUN_DIR/started-by-us"
        log "stopped the engine it had started (its data and the base image stay cached)"
    fi
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
