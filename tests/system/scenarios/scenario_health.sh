#!/bin/bash
# Scenario "health" (issue 17): health checks under systemd.
#   healthd is Type=notify and never notifies; its image's health check passes once
#   it is up (2 s after start). A dependent oneshot ordered After= and Requires= it
#   starts only after healthd became active, i.e. after the first passing check.
#   sick: the same image with --health-cmd false: berth-run stops it after its
#   retries and exits 69, so the start fails and systemd lists the unit as failed.
SCENARIO=health
. /mnt/host/lib.sh
H=oci-archive:$IMAGES/healthd.tar:1

dependent_unit() {
  cat > /etc/systemd/system/dependent.service <<'UNIT'
[Unit]
Description=ordered after healthd
After=healthd.service
Requires=healthd.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/true
UNIT
  systemctl daemon-reload
}

# The dependent starts only once healthd is active (its ActiveEnter is no later than
# the dependent's InactiveExit), and healthd reached active through a passing check.
ordered_after_health() {
  systemctl start dependent.service || return
  local h d
  h=$(prop healthd.service ActiveEnterTimestampMonotonic)
  d=$(prop dependent.service InactiveExitTimestampMonotonic)
  echo "healthd active at $h, dependent started at $d"
  [ "$h" -gt 0 ] && [ "$d" -ge "$h" ] || return
  berth status healthd | shows '^health: healthy; last check .*, exit 0: '
}

journal_says_up_first() {
  # healthd printed "up" before systemd saw it started: READY came from the check.
  journalctl -b -u healthd.service -o cat --no-pager | shows 'healthd: up' || return
  journalctl -b -u healthd.service -o cat --no-pager | awk '/healthd: up/ {up=1} /^Started / && !up {exit 1}'
}

list_column() {
  berth list | shows '^healthd .* healthy$'
}

sick_fails() {
  if systemctl start sick.service; then
    echo "sick.service started although its check always fails"
    return 1
  fi
  local st
  st=$(prop sick.service ExecMainStatus)
  echo "sick.service ExecMainStatus=$st, $(prop sick.service Result)"
  [ "$st" = 69 ] && systemctl --failed --plain --no-legend | shows '^sick.service'
}

phase1() {
  check "install healthd (image Healthcheck)" install_only healthd "$H"
  check "health.json in the deployment" test -s /var/lib/berth/containers/healthd/health.json
  check "dependent unit After=/Requires= healthd" dependent_unit
  check "dependent starts only after healthd's first passing check" ordered_after_health
  check "healthd became active after it was up (READY from the check)" journal_says_up_first
  check "berth list shows HEALTH healthy" list_column
  check "install sick (--health-cmd false)" install_only sick "$H" \
    --health-cmd false --health-interval 200ms --health-retries 2 --health-start-period 0s
  check "unhealthy: start fails, exit 69, listed failed" sick_fails
  systemctl reset-failed sick.service
  check "stop and uninstall" eval 'systemctl stop dependent.service; uninstall_now sick && uninstall_now healthd'
  check "systemctl --failed is empty" no_failed_units
}

case $1 in
  1) phase1 ;;
esac
finish
