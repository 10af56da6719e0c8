#!/usr/bin/env bash
# crun 1.8.1 refuses a hybrid cgroup host while the cgroup2 mount still owns a
# controller ("cgroups in hybrid mode not supported, drop all controllers from
# cgroupv2"). Mounting each such controller as a v1 hierarchy moves it off
# cgroup2 (sticky until reboot). berth's bundled runtime and runc need nothing;
# only the crun comparison tests and benchmarks do. Changes the host: CI only.
#
# cgroupfs reports size 0 for every file, so the controllers are read, never
# tested with `-s`: a fresh host has `hugetlb` there and a file of "size" 0.
set -euo pipefail
unified=/sys/fs/cgroup/unified
[ "$(stat -fc %T /sys/fs/cgroup)" = tmpfs ] || exit 0   # pure v1 or pure v2: nothing to move
[ -r "$unified/cgroup.controllers" ] || exit 0
controllers=$(cat "$unified/cgroup.controllers")
for c in $controllers; do
  mkdir -p "/sys/fs/cgroup/$c"
  mountpoint -q "/sys/fs/cgroup/$c" || mount -t cgroup -o "$c" cgroup "/sys/fs/cgroup/$c"
  echo "moved cgroup controller $c from cgroup2 to a v1 hierarchy (for crun)"
done
left=$(cat "$unified/cgroup.controllers")
if [ -n "$left" ]; then
  echo "cgroup2 still owns controllers after the move: $left; crun will refuse this host" >&2
  exit 1
fi
