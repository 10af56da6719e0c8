#!/usr/bin/env bash
# crun 1.8.1 refuses a hybrid cgroup host while the cgroup2 mount still owns a
# controller ("cgroups in hybrid mode not supported, drop all controllers from
# cgroupv2"). Mounting each such controller as a v1 hierarchy moves it off
# cgroup2 (sticky until reboot). berth's bundled runtime and runc need nothing;
# only the crun comparison tests and benchmarks do. Changes the host: CI only.
set -euo pipefail
if [ "$(stat -fc %T /sys/fs/cgroup)" = tmpfs ] && [ -s /sys/fs/cgroup/unified/cgroup.controllers ]; then
  for c in $(cat /sys/fs/cgroup/unified/cgroup.controllers); do
    mkdir -p "/sys/fs/cgroup/$c"
    mountpoint -q "/sys/fs/cgroup/$c" || mount -t cgroup -o "$c" cgroup "/sys/fs/cgroup/$c"
    echo "moved cgroup controller $c from cgroup2 to a v1 hierarchy (for crun)"
  done
fi
