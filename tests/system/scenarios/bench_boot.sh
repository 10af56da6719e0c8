#!/bin/bash
# The boot benchmark (issue 16; benches/boot.sh, not CI): N Type=notify containers
# enabled in one guest, boot → all READY, berth against crun on the same bundles.
#
#   install     on the HOST, the guest not booted: `berth --root $R install` of N
#               containers (readyN, the `ready` image: sends READY=1 at once), each
#               with its berth-run unit; and beside each an otherwise identical unit,
#               crun-readyN.service (the same unit text, drop-in and bundle), whose
#               ExecStart is crun (handed in at /mnt/host/tools); and xreadyN, the same
#               image installed with `--runtime crun`, whose units run berth-run
#               --exec-runtime (berth-run prepares the container, then becomes crun).
#               Only berth's (bundled) enabled.
#   warm        one boot with berth's units enabled, not measured: the guest's first
#               boot does one-off work (journal, machine-id) that neither runtime owns.
#   berthK      boot with berth's units enabled: every one active, the metrics, then
#               berth's units disabled and crun's enabled (one systemctl call each).
#   crunK       boot with crun's units enabled: the same metrics, then the xready units.
#   xcrunK      boot with berth's --runtime crun units: the same metrics, then back.
#
# Metrics per boot (seconds): boot_all_ready_RT (systemd's userspace start → the last
# container unit active, i.e. READY=1 received), span_RT (the first container unit
# leaving inactive → the last active), the sums of the resident and proportional memory
# (RSS, PSS; KiB) of the processes that stay beside the containers (berth-run, or crun),
# plus the host's load average at the boot.
SCENARIO=$(cat /mnt/host/scenario-id)
. /mnt/host/lib.sh
N=$(cat /mnt/host/bench-n)
T=$S/tools

units() { local p=$1 i; for ((i = 1; i <= N; i++)); do echo "$p$i.service"; done; }

install_all() {
  local i u
  for ((i = 1; i <= N; i++)); do
    berth --root "$R" install --name "ready$i" "oci-archive:$IMAGES/ready.tar:1" > /dev/null || return
  done
  for ((i = 1; i <= N; i++)); do
    u=$R/etc/systemd/system/crun-ready$i.service
    sed "s|^ExecStart=.*|ExecStart=$T/crun --cgroup-manager=disabled run --bundle /var/lib/berth/containers/ready$i crun-ready$i|" \
      "$R/etc/systemd/system/ready$i.service" > "$u" || return
    printf '\n[Service]\nEnvironment=LD_LIBRARY_PATH=%s/lib\n' "$T" >> "$u"
    if [ -d "$R/etc/systemd/system/ready$i.service.d" ]; then
      cp -r "$R/etc/systemd/system/ready$i.service.d" "$R/etc/systemd/system/crun-ready$i.service.d"
    fi
  done
  for ((i = 1; i <= N; i++)); do
    berth --root "$R" install --name "xready$i" --runtime "$T/crun" "oci-archive:$IMAGES/ready.tar:1" > /dev/null || return
    printf '[Service]\nEnvironment=LD_LIBRARY_PATH=%s/lib\n' "$T" > "$R/etc/systemd/system/xready$i.service.d/crun-lib.conf"
    rm "$R/etc/systemd/system/multi-user.target.wants/xready$i.service"
  done
  grep -h '^ExecStart=' "$R/etc/systemd/system/xready1.service"
  ls "$R/etc/systemd/system/multi-user.target.wants" | grep -c '^ready'
}

# ready_metrics RT PREFIX: the boot's metrics for the units PREFIX1..N.
ready_metrics() {
  local rt=$1 p=$2 t0 first=0 last=0 u a e
  t0=$(systemctl show -p UserspaceTimestampMonotonic --value)
  for u in $(units "$p"); do
    a=$(systemctl show -p ActiveEnterTimestampMonotonic --value "$u")
    e=$(systemctl show -p InactiveExitTimestampMonotonic --value "$u")
    [ "$a" -gt "$last" ] && last=$a
    { [ "$first" = 0 ] || [ "$e" -lt "$first" ]; } && first=$e
  done
  metric "boot_all_ready_$rt" "$(awk -v a="$t0" -v b="$last" 'BEGIN { printf "%.3f", (b - a) / 1e6 }')" s
  metric "span_$rt" "$(awk -v a="$first" -v b="$last" 'BEGIN { printf "%.3f", (b - a) / 1e6 }')" s
  metric "loadavg_at_boot_$rt" "$(cut -d' ' -f1 /proc/loadavg)" load
}

# rss_sum RT COMM...: the memory of the processes named COMM that stay beside the
# containers, as metrics RT_rss_sum, RT_pss_sum (KiB) and RT_processes.
rss_sum() {
  local rt=$1 kib pids
  shift
  # Memory is of the supervisors as they run for hours: each berth-run hands
  # off to its lean form 500 ms after its container started (runtime/handoff.rs).
  sleep 2
  pids=$(for c in "$@"; do pgrep -x "$c"; done)
  kib=$(for p in $pids; do awk '/^VmRSS:/ { print $2 }' "/proc/$p/status"; done | awk '{ s += $1 } END { print s + 0 }')
  metric "${rt}_rss_sum" "$kib" KiB
  # RSS counts the pages every instance shares (the binary, libc) once per
  # process; PSS divides them among the sharers: what N instances really take.
  kib=$(for p in $pids; do awk '/^Pss:/ { print $2 }' "/proc/$p/smaps_rollup"; done |
    awk '{ s += $1 } END { print s + 0 }')
  metric "${rt}_pss_sum" "$kib" KiB
  metric "${rt}_processes" "$(echo "$pids" | grep -c .)" n
}

swap() {
  # $1: the prefix to disable, $2: the prefix to enable.
  systemctl disable --quiet $(units "$1") && systemctl enable --quiet $(units "$2")
}

case $1 in
  install)
    check "$N containers installed offline (berth --root), crun twins written" install_all ;;
  warm)
    check "warm-up boot (not measured): all $N berth-run units active" all_active $(units ready) ;;
  berth*)
    check "all $N berth-run units active at boot" all_active $(units ready)
    ready_metrics berth ready
    rss_sum berth berth-run crun
    check "switch to the crun units" swap ready crun-ready ;;
  crun*)
    check "all $N crun units active at boot" all_active $(units crun-ready)
    ready_metrics crun crun-ready
    rss_sum crun berth-run crun
    check "switch to berth's --runtime crun units" swap crun-ready xready ;;
  xcrun*)
    check "all $N berth --runtime crun units active at boot" all_active $(units xready)
    ready_metrics xcrun xready
    rss_sum xcrun berth-run crun
    check "switch to the berth units" swap xready ready ;;
esac
finish
