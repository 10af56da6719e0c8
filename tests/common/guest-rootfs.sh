#!/usr/bin/env bash
# Builds the Debian 12 guest root filesystem the system tests boot with
# `systemd-nspawn -b` (tests/common/guest.rs calls this; it hashes this file and the
# package list into the cache key, so any change here rebuilds the guest).
#
#   guest-rootfs.sh DEST MIRROR PACKAGES DEBCACHE
#
# DEST must not exist (the caller builds into a temporary name and renames it into
# place). MIRROR comes from the host's apt configuration; PACKAGES is a comma-separated
# --include list; DEBCACHE keeps the downloaded .debs between builds.
#
# The guest gets: a fixed machine id (so both boots of one run share one persistent
# journal), a persistent journal, nothing that waits for a network, no gettys, and
# berth-harness.service, which runs /mnt/host/harness (handed in per run over the
# --bind share) once multi-user.target is reached. What the harness does is not part
# of the cached image.
set -euo pipefail
dest=$1 mirror=$2 packages=$3 debcache=$4
mkdir -p "$debcache"
debootstrap --variant=minbase --cache-dir="$debcache" --include="$packages" \
  bookworm "$dest" "$mirror"

echo berth-guest > "$dest/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 berth-guest\n::1 localhost\n' > "$dest/etc/hosts"
tr -d '-' < /proc/sys/kernel/random/uuid > "$dest/etc/machine-id"
mkdir -p "$dest/var/log/journal" "$dest/mnt/host"

cat > "$dest/etc/systemd/system/berth-harness.service" <<'UNIT'
[Unit]
Description=berth system-test harness (/mnt/host/harness)
After=multi-user.target
ConditionPathExists=/mnt/host/harness

[Service]
Type=oneshot
ExecStart=/bin/bash /mnt/host/harness
StandardOutput=journal+console
StandardError=journal+console

[Install]
WantedBy=multi-user.target
UNIT
chroot "$dest" systemctl enable berth-harness.service
# Nothing in the guest reaches for a network, a terminal or a timer.
chroot "$dest" systemctl mask \
  systemd-networkd-wait-online.service apt-daily.timer apt-daily-upgrade.timer \
  dpkg-db-backup.timer e2scrub_all.timer fstrim.timer \
  console-getty.service getty@.service serial-getty@.service >/dev/null 2>&1 || true

rm -rf "$dest"/var/cache/apt/archives/*.deb "$dest"/var/lib/apt/lists/*
