#!/usr/bin/env bash
# The system packages some tests drive for real: Debian's chromium (browser tests, through
# playwright with executable_path) and postgresql (the call history on a real server).
# Installed with apt-get when missing and allowed (root); elsewhere those tests skip, saying why.
set -uo pipefail
wanted=()
command -v chromium >/dev/null 2>&1 || wanted+=(chromium)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || wanted+=(postgresql)
[ ${#wanted[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "test-packages: ${wanted[*]} missing and not installable here (needs root and apt-get): their tests skip" >&2
    exit 0
fi
echo "test-packages: installing ${wanted[*]} (Debian packages)" >&2
DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${wanted[@]}" >/tmp/telephony-test-packages.log 2>&1 \
    || { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${wanted[@]}" >>/tmp/telephony-test-packages.log 2>&1; } \
    || echo "test-packages: apt-get failed (see /tmp/telephony-test-packages.log): those tests skip" >&2
# The server package starts a cluster of its own; the tests start theirs.
command -v pg_ctlcluster >/dev/null 2>&1 && pg_ctlcluster --mode fast "$(ls /usr/lib/postgresql | tail -1)" main stop >/dev/null 2>&1
exit 0
