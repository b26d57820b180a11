#!/usr/bin/env bash
# Builds the server's image agentpane/server:latest for the in-cluster Deployment
# (`agentpane manifests`) without any registry: the agentpane binary (debug info stripped), the
# static agentpane-agent beside it (the exec channel puts it into sandboxes), and exactly the
# shared libraries the server loads (ldd: the host's own, the ones it was built against),
# plus /etc/passwd, /etc/group and /etc/nsswitch.conf, packed into a tar and `docker import`ed.
# No shell or package manager is in it: the pod runs one program.
#
# Cached like the sandbox image: the tag agentpane/server:<key>, where key hashes the binary,
# the libraries and this script; with that tag present (label org.agentpane.image.key) only
# :latest is re-pointed. The root filesystem tar is kept under /var/cache/agentpane/server-image/.
#
#   scripts/build-server-image.sh [BINARY]     # default build/agentpane
#   then: scripts/test-cluster import-image agentpane/server:latest
set -euo pipefail

ROOT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN=${1:-$ROOT_DIR/build/agentpane}
IMAGE_REPO=agentpane/server
KEY_LABEL=org.agentpane.image.key
CACHE_DIR=/var/cache/agentpane/server-image
UID_=1000 GID_=1000
T0=$SECONDS

log() { printf '[server-image] %s (%ds)\n' "$*" "$((SECONDS - T0))"; }
die() { printf '[server-image] ERROR: %s\n' "$*" >&2; exit 1; }

[[ -x $BIN ]] || die "no agentpane binary at $BIN (bash scripts/build.sh agentpane)"
# The in-sandbox command runner the exec channel copies into sandboxes (src/channel): found
# next to the server's binary, so it goes next to it in the image. Static already.
AGENT=$(dirname "$BIN")/agentpane-agent
[[ -x $AGENT ]] || die "no agentpane-agent next to $BIN (bash scripts/build.sh agentpane-agent)"
command -v docker >/dev/null || die "docker is not installed"

# The libraries the dynamic loader resolves for the binary: "name => /path (addr)" and the
# loader itself "/lib64/ld-linux-x86-64.so.2 (addr)".
mapfile -t LIBS < <(ldd "$BIN" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' | sort -u)
((${#LIBS[@]} > 0)) || die "ldd found no libraries for $BIN"

KEY=$(
  {
    sha256sum "$BIN" | cut -d' ' -f1
    sha256sum "$AGENT" | cut -d' ' -f1
    for l in "${LIBS[@]}"; do printf '%s ' "$l"; sha256sum "$(readlink -f "$l")" | cut -d' ' -f1; done
    cat "${BASH_SOURCE[0]}"
  } | sha256sum | cut -c1-16
)
TAG="$IMAGE_REPO:$KEY"

"$ROOT_DIR/scripts/start-docker.sh" >/dev/null

if [[ $(docker image inspect --format "{{index .Config.Labels \"$KEY_LABEL\"}}" "$TAG" 2>/dev/null) == "$KEY" ]]; then
  log "up to date (key $KEY)"
else
  mkdir -p "$CACHE_DIR"
  TARBALL="$CACHE_DIR/$KEY.tar"
  if [[ ! -f $TARBALL ]]; then
    ROOTFS=$(mktemp -d "$CACHE_DIR/rootfs.XXXXXX")
    trap 'rm -rf "$ROOTFS"' EXIT
    install -d -m 0755 "$ROOTFS"/{etc,usr/local/bin,var/lib/agentpane,projects}
    install -d -m 1777 "$ROOTFS/tmp"
    objcopy --strip-debug "$BIN" "$ROOTFS/usr/local/bin/agentpane"
    chmod 0755 "$ROOTFS/usr/local/bin/agentpane"
    install -m 0755 "$AGENT" "$ROOTFS/usr/local/bin/agentpane-agent"
    for l in "${LIBS[@]}"; do
      install -d -m 0755 "$ROOTFS$(dirname "$l")"
      cp -L "$l" "$ROOTFS$l"
    done
    printf 'root:x:0:0:root:/root:/usr/sbin/nologin\nagent:x:%s:%s:agentpane:/var/lib/agentpane:/usr/sbin/nologin\n' \
      "$UID_" "$GID_" >"$ROOTFS/etc/passwd"
    printf 'root:x:0:\nagent:x:%s:\n' "$GID_" >"$ROOTFS/etc/group"
    printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$ROOTFS/etc/nsswitch.conf"
    chown "$UID_:$GID_" "$ROOTFS/var/lib/agentpane" "$ROOTFS/projects"
    tar -C "$ROOTFS" --numeric-owner -cf "$TARBALL.tmp" .
    mv "$TARBALL.tmp" "$TARBALL"
    rm -rf "$ROOTFS"
    trap - EXIT
    log "root filesystem $TARBALL ($(du -m "$TARBALL" | cut -f1) MB)"
  fi
  docker import \
    --change "LABEL $KEY_LABEL=$KEY" \
    --change "USER $UID_:$GID_" \
    --change 'ENTRYPOINT ["/usr/local/bin/agentpane"]' \
    --change 'CMD ["serve", "--listen", "0.0.0.0:7300"]' \
    --change 'ENV AGENTPANE_HOME=/var/lib/agentpane' \
    "$TARBALL" "$TAG" >/dev/null
  log "imported $TAG"
  # Older keys' tarballs are not needed once their image is gone.
  find "$CACHE_DIR" -maxdepth 1 -name '*.tar' ! -name "$KEY.tar" -mtime +7 -delete 2>/dev/null || true
fi
want=$(docker image inspect --format '{{.Id}}' "$TAG")
have=$(docker image inspect --format '{{.Id}}' "$IMAGE_REPO:latest" 2>/dev/null || true)
[[ $want == "$have" ]] || docker tag "$TAG" "$IMAGE_REPO:latest"
log "image $IMAGE_REPO:latest = $TAG"
