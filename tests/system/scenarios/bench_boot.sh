#!/bin/bash
# The boot benchmark (issue 16; benches/boot.sh, not CI): N Type=notify containers
# enabled in one guest, boot → all READY, berth against crun on the same bundles.
#
#   install     on the HOST, the guest not booted: `berth --root $R install` of N
#               containers (readyN, the `ready` image: sends READY=1 at once), each
#               with its berth-run unit; and beside each an otherwise identical unit,
#               crun-readyN.service (the same unit text, drop-in and bundle), whose
#               ExecStart is crun (handed in at /mnt/host/tools). Only berth's enabled.
#   warm        one boot with berth's units enabled, not measured: the guest's first
#               boot does one-off work (journal, machine-id) that neither runtime owns.
#   berthK      boot with berth's units enabled: every one active, the metrics, then
#               berth's units disabled and crun's enabled (one systemctl call each).
#   crunK       boot with crun's units enabled: the same metrics, then back.
#
# Metrics per boot (seconds): boot_all_ready_RT (systemd's userspace start → the last
# container unit active, i.e. READY=1 received), span_RT (the first container unit
# leaving inactive → the last active), and for berth the sums of berth-run's resident
# and proportional memory (RSS, PSS; KiB) with all N running, plus the host's load
# average at the boot.
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

rss_sum() {
  local kib
  # Memory is of the supervisors as they run for hours: each berth-run hands
  # off to its lean form 500 ms after its container started (runtime/handoff.rs).
  sleep 2
  kib=$(ps -C berth-run -o rss= | awk '{ s += $1 } END { print s + 0 }')
  metric berth_run_rss_sum "$kib" KiB
  # RSS counts the pages every instance shares (the binary, libc) once per
  # process; PSS divides them among the sharers: what N instances really take.
  kib=$(for p in $(pgrep -x berth-run); do awk '/^Pss:/ { print $2 }' "/proc/$p/smaps_rollup"; done |
    awk '{ s += $1 } END { print s + 0 }')
  metric berth_run_pss_sum "$kib" KiB
  metric berth_run_processes "$(pgrep -c -x berth-run)" n
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
    rss_sum
    check "switch to the crun units" swap ready crun-ready ;;
  crun*)
    check "all $N crun units active at boot" all_active $(units crun-ready)
    ready_metrics crun crun-ready
    check "switch to the berth units" swap crun-ready ready ;;
esac
finish
