#!/usr/bin/env bash
# Installs every Debian package the project needs to build, test and run. Idempotent.
set -euo pipefail
PKGS=(
  build-essential cmake ninja-build pkg-config git ca-certificates curl ccache
  libboost-dev libboost-system-dev libssl-dev nlohmann-json3-dev libyaml-cpp-dev
  libsqlite3-dev sqlite3 libcli11-dev libspdlog-dev libfmt-dev libgtest-dev libgmock-dev
  libbenchmark-dev clang-format clang-tidy liburiparser-dev libhowardhinnant-date-dev
  clang libclang-rt-14-dev
  docker.io debootstrap tmux jq wrk hyperfine python3-venv
  containerd etcd-server containernetworking-plugins iptables ipset conntrack socat iproute2 openssl
  chromium chromium-driver
)
# The web page (web/) builds and tests with Node.js 18 or newer and npm. A node already on the
# machine (say from another distribution channel) is kept; otherwise Debian's.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  PKGS+=(nodejs npm)
fi
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "[deps] installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  echo "[deps] all Debian packages present"
fi
