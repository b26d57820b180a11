#!/usr/bin/env bash
# Configures and builds everything into build/ (ccache in a fixed place outside the clone).
set -euo pipefail
cd "$(dirname "$0")/.."
export CCACHE_DIR="${CCACHE_DIR:-/var/cache/agentpane/ccache}"
# Hits across clones in other folders (CI clones afresh), and with precompiled headers.
export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=true
export CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime
mkdir -p "$CCACHE_DIR"
BUILD_DIR="${BUILD_DIR:-build}"
if [[ ! -f $BUILD_DIR/build.ninja ]]; then
  cmake -G Ninja -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo
fi
echo "[build] compiling (ninja -j${JOBS:-2})"
ninja -C "$BUILD_DIR" -j"${JOBS:-2}" "$@"
