#!/bin/bash
# Runs INSIDE the debootstrapped rootfs (chroot) as root, called by
# scripts/build-sandbox-image.sh. Its content is part of the image cache key,
# so editing this file triggers a rebuild.
#
# Environment (set by the build script):
#   AGENT_UID AGENT_GID AGENT_USER   the unprivileged sandbox user
#   APT_SOURCES                      sources.list content for the image ("" = keep)
#   APT_UPGRADE                      1 = apply bookworm-updates/-security before cleanup
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8 LANG=C.UTF-8

# Never start daemons while we are inside the chroot.
printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
chmod 0755 /usr/sbin/policy-rc.d

# Keep future `apt-get install` in the sandbox small too (same list as debian:*-slim).
cat >/etc/dpkg/dpkg.cfg.d/agentpane-nodoc <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
cat >/etc/apt/apt.conf.d/agentpane-slim <<'EOF'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Languages "none";
Dpkg::Use-Pty "0";
EOF

if [[ -n ${APT_SOURCES:-} ]]; then
  printf '%s\n' "$APT_SOURCES" >/etc/apt/sources.list
fi
if [[ ${APT_UPGRADE:-0} == 1 ]]; then
  echo "[chroot] apt-get update && dist-upgrade (bookworm-updates / -security)"
  apt-get -q update
  apt-get -q -y -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold dist-upgrade
fi

# Unprivileged user the agents run as.
if ! getent group "$AGENT_GID" >/dev/null; then
  groupadd --gid "$AGENT_GID" "$AGENT_USER"
fi
if ! getent passwd "$AGENT_UID" >/dev/null; then
  useradd --uid "$AGENT_UID" --gid "$AGENT_GID" --home-dir "/home/$AGENT_USER" \
    --create-home --shell /bin/bash "$AGENT_USER"
fi
install -d -o "$AGENT_UID" -g "$AGENT_GID" -m 0755 /workspace
install -d -o "$AGENT_UID" -g "$AGENT_GID" -m 0755 "/home/$AGENT_USER"

# Sensible git defaults for agents working in /workspace (bind mounts are often
# owned by another uid, which trips git's safe.directory check).
git config --system init.defaultBranch main
git config --system safe.directory '*'

# ---- slim down --------------------------------------------------------------------
apt-get clean
rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/apt/archives/partial/*
rm -f /var/cache/debconf/*-old /var/lib/dpkg/*-old /var/cache/ldconfig/aux-cache
find /usr/share/doc -mindepth 1 -not -name copyright -not -type d -delete
find /usr/share/doc -mindepth 1 -type d -empty -delete
rm -rf /usr/share/man/* /usr/share/groff/* /usr/share/info/* /usr/share/lintian/* /usr/share/linda/*
find /usr/share/locale -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
find /var/log -type f -exec truncate -s 0 {} +
rm -rf /tmp/* /var/tmp/* /root/.cache
# Runtime-provided files: docker bind-mounts resolv.conf/hosts/hostname.
rm -f /etc/hostname
: >/etc/resolv.conf
[[ -e /etc/machine-id ]] && : >/etc/machine-id
chmod 1777 /tmp /var/tmp
rm -f /usr/sbin/policy-rc.d
