#!/bin/sh
# Compiles the audio kernels (telephony/audio/_kernels.c) for the image's own Python, into
# ./out; the Dockerfile's `kernels` stage runs it. Where the base image has no C compiler or no
# Python headers it installs them with apt-get ($KERNEL_BUILD_PACKAGES, plus python3-dev when
# the headers are missing; empty: install nothing). Nothing here can fail the build: without
# the kernels the image runs the same work in Python and numpy (telephony/audio/compiled.py).
set -u
mkdir -p out
include=$(python -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
suffix=$(python -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')
packages=""
command -v cc >/dev/null || packages="$KERNEL_BUILD_PACKAGES"
[ -f "$include/Python.h" ] || packages="$packages python3-dev"
if [ -n "$KERNEL_BUILD_PACKAGES" ] && [ -n "$(echo "$packages" | tr -d ' ')" ] && command -v apt-get >/dev/null; then
    if ! (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $packages) >apt.log 2>&1; then
        echo "build-kernels: apt-get could not install$packages; the audio kernels will run in Python" >&2
        tail -3 apt.log >&2
    fi
fi
# The flags of setup.py's Extension (no fused multiply-add: the same output on every CPU).
if ! command -v cc >/dev/null; then
    echo "build-kernels: no C compiler; the audio kernels will run in Python" >&2
elif cc -O3 -ffp-contract=off -shared -fPIC -I"$include" _kernels.c -o "out/_kernels$suffix"; then
    echo "build-kernels: built out/_kernels$suffix"
else
    rm -f "out/_kernels$suffix"
    echo "build-kernels: _kernels.c did not compile; the audio kernels will run in Python" >&2
fi
exit 0
