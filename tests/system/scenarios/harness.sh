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
timeout --kill-after=10 "$budget" bash "$S/scenario" "$phase" > "$S/phase$phase.log" 2>&1
rc=$?
[ $rc = 124 ] && echo "berth-harness: phase $phase timed out after ${budget}s" >> "$S/phase$phase.log"
journalctl -b --no-pager -o short-monotonic > "$S/journal-boot$phase.txt" 2>&1
echo $rc > "$S/phase$phase.rc.tmp" && mv "$S/phase$phase.rc.tmp" "$S/phase$phase.rc"
sync
echo "berth-harness: phase $phase rc=$rc"
systemctl --no-block poweroff
exit 0
