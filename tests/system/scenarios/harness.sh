#!/bin/bash
# Runs in the guest as berth-harness.service (after multi-user.target) on every boot:
# runs /mnt/host/scenario PHASE (PHASE from /mnt/host/phase) within its budget, keeps
# its output and exit status in the share, exports this boot's journal, powers off.
S=/mnt/host
phase=$(cat "$S/phase")
budget=$(cat "$S/budget" 2>/dev/null || echo 240)
echo "berth-harness: phase $phase, budget ${budget}s"
# systemd's start to this unit's start (multi-user.target reached), in seconds.
t0=$(systemctl show -p UserspaceTimestampMonotonic --value)
t1=$(systemctl show -p ExecMainStartTimestampMonotonic --value berth-harness.service)
printf '%s\tboot%s_to_multi_user\t%s\ts\n' "$(cat "$S/scenario-id")" "$phase" \
  "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1e6 }')" >> "$S/metrics.tsv"
cd "$S" || exit 1
# berth from its package (the harness asked for it): installed once, before phase 1.
if [ -f "$S/install-deb" ] && ! dpkg -s berth > /dev/null 2>&1; then
  d0=$(date +%s.%N)
  if dpkg -i "$S/berth.deb" > "$S/dpkg-install.log" 2>&1; then st=pass d=; else st=fail d="see dpkg-install.log"; fi
  printf '%s\tdpkg -i berth.deb in the booted guest\t%s\t%s\t%s\n' "$(cat "$S/scenario-id")" "$st" \
    "$(awk -v a="$d0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')" "$d" >> "$S/results.tsv"
fi
timeout --kill-after=10 "$budget" bash "$S/scenario" "$phase" > "$S/phase$phase.log" 2>&1
rc=$?
[ $rc = 124 ] && echo "berth-harness: phase $phase timed out after ${budget}s" >> "$S/phase$phase.log"
journalctl -b --no-pager -o short-monotonic > "$S/journal-boot$phase.txt" 2>&1
echo $rc > "$S/phase$phase.rc.tmp" && mv "$S/phase$phase.rc.tmp" "$S/phase$phase.rc"
sync
echo "berth-harness: phase $phase rc=$rc"
systemctl --no-block poweroff
exit 0
