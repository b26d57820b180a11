#!/usr/bin/env bash
# Builds the sandbox image agentpane/sandbox:latest from Debian packages only
# (no registry pulls): debootstrap --variant=minbase bookworm + image/configure-rootfs.sh,
# then `docker import`; then a thin layer on top with the in-sandbox agent (the static
# build/agentpane-agent, built here when missing) at /usr/local/bin/agentpane-agent, where the
# server's exec channel looks first (src/channel/channel_provider.hpp: kBakedAgentPath).
#
# Cached at three levels:
#   * the rootfs, keyed by a hash of the recipe (suite, package list, RECIPE_VERSION, uid,
#     image/configure-rootfs.sh): agentpane/sandbox:<key>, also tagged :base (the image
#     without the agent, for tests of the copy-in path);
#   * the image, keyed by <key>-a<first 12 hex of the agent binary's sha256>:
#     agentpane/sandbox:<key>-a<sha> with label org.agentpane.image.key=<that>. When docker
#     has it -> only (re)tag :latest, done in well under a second; a changed agent only
#     adds a new agent layer on the cached rootfs (a second or two);
#   * /var/cache/agentpane/image/<key>.tar exists -> skip debootstrap, just import.
# .deb files are kept in /var/cache/agentpane/image/debs for faster rebuilds.
#
# Env: AGENTPANE_DEBIAN_MIRROR   override the mirror (default: the host's apt config)
#      AGENTPANE_IMAGE_UPGRADE=0 skip bookworm-updates/-security upgrade
#      AGENTPANE_IMAGE_FORCE=1   ignore the caches and rebuild
#      AGENTPANE_AGENT_BINARY    the agent to bake in (default: build/agentpane-agent)
set -euo pipefail

# ---- recipe (anything here changes the key) -----------------------------------------
RECIPE_VERSION=1
SUITE=bookworm
VARIANT=minbase
PACKAGES=(bash coreutils tmux git curl python3 ca-certificates procps grep sed findutils)
AGENT_USER=agent
AGENT_UID=1000
AGENT_GID=1000
UPGRADE="${AGENTPANE_IMAGE_UPGRADE:-1}"
IMAGE_REPO=agentpane/sandbox
KEY_LABEL=org.agentpane.image.key

ROOT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CONFIGURE="$ROOT_DIR/image/configure-rootfs.sh"
CACHE_DIR=/var/cache/agentpane/image
T0=$SECONDS

log() { printf '[image] %s (%ds)\n' "$*" "$((SECONDS - T0))"; }
die() { printf '[image] ERROR: %s\n' "$*" >&2; exit 1; }

[[ $EUID -eq 0 ]] || die "must run as root (debootstrap, chroot, docker)"
[[ -f $CONFIGURE ]] || die "missing $CONFIGURE"

# ---- the agent (its hash is part of the image's key) -----------------------------------
AGENT_PATH_IN_IMAGE=/usr/local/bin/agentpane-agent
BUILD_DIR="${BUILD_DIR:-build}"
[[ $BUILD_DIR == /* ]] || BUILD_DIR="$ROOT_DIR/$BUILD_DIR"
AGENT_BIN="${AGENTPANE_AGENT_BINARY:-$BUILD_DIR/agentpane-agent}"
if [[ -z ${AGENTPANE_AGENT_BINARY:-} ]]; then
  # Up to date with the sources (ninja does nothing when it is).
  log "building the agent (scripts/build.sh agentpane-agent)"
  BUILD_DIR="$BUILD_DIR" JOBS="${JOBS:-2}" bash "$ROOT_DIR/scripts/build.sh" agentpane-agent >/dev/null
fi
[[ -x $AGENT_BIN ]] || die "no agent binary at $AGENT_BIN"
# Any image must be able to run it: no dynamic loader, no shared libraries.
[[ $(readelf -l "$AGENT_BIN" 2>/dev/null) != *"program interpreter"* ]] ||
  die "$AGENT_BIN is not statically linked"
AGENT_SHA=$(sha256sum "$AGENT_BIN" | cut -d' ' -f1)

KEY=$(
  {
    printf 'recipe=%s\nsuite=%s\nvariant=%s\nuser=%s:%s:%s\nupgrade=%s\n' \
      "$RECIPE_VERSION" "$SUITE" "$VARIANT" "$AGENT_USER" "$AGENT_UID" "$AGENT_GID" "$UPGRADE"
    printf 'pkg=%s\n' "${PACKAGES[@]}"
    cat "$CONFIGURE"
  } | sha256sum | cut -c1-16
)
BASE_TAG="$IMAGE_REPO:$KEY"           # the rootfs alone
FULL_KEY="$KEY-a${AGENT_SHA:0:12}"     # the rootfs + the agent layer
TAG="$IMAGE_REPO:$FULL_KEY"
TARBALL="$CACHE_DIR/$KEY.tar"

report() {
  local id size
  id=$(docker image inspect --format '{{.Id}}' "$IMAGE_REPO:latest")
  size=$(docker image inspect --format '{{.Size}}' "$IMAGE_REPO:latest")
  log "image $IMAGE_REPO:latest = $TAG"
  printf '[image] id   %s\n[image] size %s MB (%s bytes)\n' "$id" "$((size / 1000000))" "$size"
}

# Point :latest at :<key> if it does not already.
tag_latest() {
  local want have
  want=$(docker image inspect --format '{{.Id}}' "$TAG")
  have=$(docker image inspect --format '{{.Id}}' "$IMAGE_REPO:latest" 2>/dev/null || true)
  [[ $want == "$have" ]] || docker tag "$TAG" "$IMAGE_REPO:latest"
}

labelled() { # tag key
  [[ $(docker image inspect --format "{{index .Config.Labels \"$KEY_LABEL\"}}" "$1" 2>/dev/null) == "$2" ]]
}
have_image() { labelled "$TAG" "$FULL_KEY"; }
have_base() { labelled "$BASE_TAG" "$KEY"; }

# The agent layer on the rootfs image: a container that never runs, the agent copied in,
# committed (the base's USER, WORKDIR, CMD and ENV carry over).
add_agent_layer() {
  local cid
  log "agent layer: $AGENT_BIN (sha256 ${AGENT_SHA:0:12}) -> $AGENT_PATH_IN_IMAGE"
  cid=$(docker create "$BASE_TAG")
  if ! docker cp "$AGENT_BIN" "$cid:$AGENT_PATH_IN_IMAGE" ||
    ! docker commit --change "LABEL $KEY_LABEL=$FULL_KEY" \
      --change "LABEL org.agentpane.agent.sha256=$AGENT_SHA" \
      --message "agentpane-agent ${AGENT_SHA:0:12}" "$cid" "$TAG" >/dev/null; then
    docker rm -f "$cid" >/dev/null 2>&1 || true
    die "adding the agent layer failed"
  fi
  docker rm -f "$cid" >/dev/null
  have_image || die "image $TAG lacks label $KEY_LABEL=$FULL_KEY"
  docker tag "$BASE_TAG" "$IMAGE_REPO:base"
  docker tag "$TAG" "$IMAGE_REPO:latest"
}

# Prune: older keyed tags (plain `docker rmi` refuses while a container uses
# them), and cached tarballs/logs beyond the newest three keys.
prune() {
  docker image ls --format '{{.Tag}}' "$IMAGE_REPO" |
    { grep -vxF -e latest -e base -e "$KEY" -e "$FULL_KEY" || true; } |
    while read -r old; do docker rmi "$IMAGE_REPO:$old" >/dev/null 2>&1 || true; done
  { ls -1t "$CACHE_DIR"/*.tar 2>/dev/null || true; } | tail -n +4 | while read -r old; do
    rm -f -- "$old" "${old%.tar}.manifest" "${old%.tar}.debootstrap.log"
  done
}

"$ROOT_DIR/scripts/start-docker.sh"

# Fast path, no lock needed.
if [[ ${AGENTPANE_IMAGE_FORCE:-0} != 1 ]] && have_image; then
  tag_latest
  log "up to date (key $FULL_KEY)"
  report
  exit 0
fi

mkdir -p "$CACHE_DIR/debs"
exec 9>"$CACHE_DIR/.lock"
flock -n 9 || { log "another build holds $CACHE_DIR/.lock, waiting"; flock 9; }
if [[ ${AGENTPANE_IMAGE_FORCE:-0} != 1 ]] && have_image; then # built while we waited
  tag_latest; log "up to date (key $FULL_KEY)"; report; exit 0
fi
# Only the agent changed: a new layer on the cached rootfs image.
if [[ ${AGENTPANE_IMAGE_FORCE:-0} != 1 ]] && have_base; then
  add_agent_layer
  prune
  log "done"
  report
  exit 0
fi

# ---- mirror discovery (the host's apt configuration) ---------------------------------
# Prints the URIs (one per line) that serve suite $1 with Types: deb, from
# one-line sources.list files and deb822 *.sources files.
apt_uris_for_suite() {
  local suite=$1 f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -f $f ]] || continue
    awk -v s="$suite" '$1 == "deb" {
        i = 2
        if ($2 ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
        if ($(i + 1) == s) print $i
      }' "$f"
  done
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -f $f ]] || continue
    awk -v s="$suite" '
      function flush(   n, m, a, b, S, U) {
        if (F["types"] ~ /(^|[ \t])deb([ \t]|$)/ && tolower(F["enabled"]) != "no") {
          n = split(F["suites"], S, /[ \t]+/); m = split(F["uris"], U, /[ \t]+/)
          for (a = 1; a <= n; a++) if (S[a] == s) for (b = 1; b <= m; b++) if (U[b] != "") print U[b]
        }
        delete F; cur = ""
      }
      /^[ \t]*#/ { next }
      /^[ \t]*$/ { flush(); next }
      /^[ \t]/   { if (cur != "") F[cur] = F[cur] " " $0; next }
      /^[A-Za-z0-9-]+:/ { p = index($0, ":"); cur = tolower(substr($0, 1, p - 1)); F[cur] = substr($0, p + 1); next }
      END { flush() }' "$f"
  done
}
first_http() { grep -E '^https?://' | head -n1 | sed 's:/*$::' || true; }

MIRROR="${AGENTPANE_DEBIAN_MIRROR:-$(apt_uris_for_suite "$SUITE" | first_http)}"
[[ -n $MIRROR ]] || { echo "[image] no Debian mirror for $SUITE in the apt sources; set AGENTPANE_DEBIAN_MIRROR" >&2; exit 1; }
UPDATES_MIRROR="$(apt_uris_for_suite "$SUITE-updates" | first_http)"
SECURITY_MIRROR="$(apt_uris_for_suite "$SUITE-security" | first_http)"
APT_SOURCES="deb $MIRROR $SUITE main"
[[ -n $UPDATES_MIRROR ]] && APT_SOURCES+=$'\n'"deb $UPDATES_MIRROR $SUITE-updates main"
[[ -n $SECURITY_MIRROR ]] && APT_SOURCES+=$'\n'"deb $SECURITY_MIRROR $SUITE-security main"
log "key $KEY; mirror $MIRROR${SECURITY_MIRROR:+, security $SECURITY_MIRROR}"

# ---- build the rootfs tarball (unless cached) -----------------------------------------
WORK=""
cleanup() {
  local rc=$? m
  if [[ -n $WORK && -d $WORK ]]; then
    # Unmount anything debootstrap/chroot left mounted below $WORK (deepest first)
    # before deleting, and never cross into another filesystem while deleting.
    while read -r m; do umount -l "$m" 2>/dev/null || true; done < <(
      awk -v w="$WORK/" 'index($2, w) == 1 { print $2 }' /proc/mounts | sort -r)
    rm -rf --one-file-system "$WORK"
  fi
  rm -f "$TARBALL.partial"
  ((rc == 0)) || printf '[image] FAILED (exit %d) after %ds; temp dir removed\n' "$rc" "$((SECONDS - T0))" >&2
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

if [[ -f $TARBALL && ${AGENTPANE_IMAGE_FORCE:-0} != 1 ]]; then
  log "using cached rootfs $TARBALL"
else
  command -v debootstrap >/dev/null || die "debootstrap missing (run scripts/install-deps.sh)"
  WORK=$(mktemp -d /var/tmp/agentpane-image.XXXXXX)
  ROOTFS="$WORK/rootfs"
  DBLOG="$CACHE_DIR/$KEY.debootstrap.log"
  : >"$DBLOG"
  keyring=()
  [[ -f /usr/share/keyrings/debian-archive-keyring.gpg ]] &&
    keyring=(--keyring=/usr/share/keyrings/debian-archive-keyring.gpg)
  include=$(IFS=,; echo "${PACKAGES[*]}")

  log "debootstrap --variant=$VARIANT $SUITE (+ $include), log $DBLOG"
  # Show one line per debootstrap phase (Retrieving/Extracting/Unpacking/...), full log to file.
  last=""
  if ! debootstrap --variant="$VARIANT" --components=main --include="$include" \
      --cache-dir="$CACHE_DIR/debs" "${keyring[@]}" \
      "$SUITE" "$ROOTFS" "$MIRROR" 2>&1 | tee -a "$DBLOG" | while IFS= read -r line; do
        case $line in
          E:* | W:*) printf '[image]   %s\n' "$line" ;;
          I:*)
            verb=${line#I: }; verb=${verb%% *}
            [[ $verb == Validating ]] && verb=Retrieving # one phase per download
            if [[ $verb != "$last" ]]; then
              last=$verb
              printf '[image] debootstrap: %s (%ds)\n' "${line#I: }" "$((SECONDS - T0))"
            fi ;;
        esac
      done; then
    printf '[image] debootstrap failed; last lines of %s:\n' "$DBLOG" >&2
    tail -n 30 "$DBLOG" >&2
    [[ -f $ROOTFS/debootstrap/debootstrap.log ]] && tail -n 30 "$ROOTFS/debootstrap/debootstrap.log" >&2
    exit 1
  fi

  log "configuring rootfs (user $AGENT_USER $AGENT_UID:$AGENT_GID, /workspace, slimming)"
  cp /etc/resolv.conf "$ROOTFS/etc/resolv.conf" # for apt inside the chroot; emptied again at the end
  install -m 0755 "$CONFIGURE" "$ROOTFS/tmp/configure-rootfs.sh"
  mount -t proc proc "$ROOTFS/proc"
  if ! env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
      AGENT_USER="$AGENT_USER" AGENT_UID="$AGENT_UID" AGENT_GID="$AGENT_GID" \
      APT_SOURCES="$APT_SOURCES" APT_UPGRADE="$UPGRADE" \
      chroot "$ROOTFS" /bin/bash /tmp/configure-rootfs.sh 2>&1 | tee -a "$DBLOG" |
      while IFS= read -r line; do # show only the interesting lines
        case $line in
          '[chroot]'* | E:* | W:* | Err:* | *' upgraded, '*) printf '[image]   %s\n' "$line" ;;
        esac
      done; then
    tail -n 30 "$DBLOG" >&2
    die "configure-rootfs.sh failed"
  fi
  umount "$ROOTFS/proc"

  # Record what went in; useful when debugging a sandbox.
  {
    printf 'key=%s\nsuite=%s\nmirror=%s\nbuilt=%s\n' "$KEY" "$SUITE" "$MIRROR" "$(date -u +%FT%TZ)"
    chroot "$ROOTFS" dpkg-query -W -f '${Package}=${Version}\n'
  } >"$ROOTFS/etc/agentpane-image"
  cp "$ROOTFS/etc/agentpane-image" "$CACHE_DIR/$KEY.manifest"
  # docker provides /dev (tmpfs) at run time; device nodes in a layer are useless.
  rm -rf "$ROOTFS/debootstrap" "$ROOTFS"/dev/* "$ROOTFS/tmp/configure-rootfs.sh"

  log "packing rootfs -> $TARBALL ($(du -sm "$ROOTFS" | cut -f1) MB on disk)"
  tar --numeric-owner --xattrs --xattrs-include='*' --sort=name \
    -C "$ROOTFS" -cf "$TARBALL.partial" .
  mv "$TARBALL.partial" "$TARBALL"
  rm -rf --one-file-system "$WORK"; WORK=""
fi

# ---- import ---------------------------------------------------------------------------
log "docker import -> $BASE_TAG"
docker import \
  --change "USER $AGENT_USER" \
  --change 'WORKDIR /workspace' \
  --change 'CMD ["sleep","infinity"]' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change "LABEL $KEY_LABEL=$KEY" \
  --message "agentpane sandbox $SUITE $VARIANT key=$KEY" \
  "$TARBALL" "$BASE_TAG" >/dev/null
have_base || die "imported image $BASE_TAG lacks label $KEY_LABEL=$KEY"
add_agent_layer
prune
log "done"
report
