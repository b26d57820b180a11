#!/usr/bin/env bash
# Builds a single-layer image archive in `docker save` format from a directory, without
# any registry or Docker daemon, for `ctr -n k8s.io images import`.
#   mkimage.sh OUT.tar NAME:TAG ROOTFS_DIR ENTRYPOINT_JSON [USER]
# e.g. mkimage.sh pause.tar agentpane.local/pause:3.9 ./root '["/pause"]' 65535:65535
set -euo pipefail
out=$1 ref=$2 rootfs=$3 entry=$4 user=${5:-}
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
tar --numeric-owner --owner=0 --group=0 --sort=name --mtime=@0 -C "$rootfs" -cf "$work/layer.tar" .
diff=$(sha256sum "$work/layer.tar" | cut -d' ' -f1)
mkdir "$work/$diff"; mv "$work/layer.tar" "$work/$diff/layer.tar"
cfg=$(printf '{"architecture":"amd64","os":"linux","created":"1970-01-01T00:00:00Z","config":{"Entrypoint":%s,"User":"%s","Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
  "$entry" "$user" "$diff")
cid=$(printf '%s' "$cfg" | sha256sum | cut -d' ' -f1)
printf '%s' "$cfg" >"$work/$cid.json"
printf '[{"Config":"%s.json","RepoTags":["%s"],"Layers":["%s/layer.tar"]}]' "$cid" "$ref" "$diff" >"$work/manifest.json"
tar --numeric-owner --owner=0 --group=0 --sort=name --mtime=@0 -C "$work" -cf "$out" manifest.json "$cid.json" "$diff"
