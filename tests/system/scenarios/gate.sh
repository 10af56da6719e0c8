#!/bin/bash
# The update gate (issue 17): soak, automatic rollback, failed digests, group updates.
# Each container follows tag `cur` of its own copy of an archive in /var/tmp; copying
# another soakN.tar over it moves the tag (1 and 3 serve, 2 exits 3 s after READY=1).
#   app    1 → 2: `berth update` exits 1 naming the reason; 1 serves again on its
#          old deployment. `update --all` does not retry that digest (status says
#          so); an explicit update does; once the tag moves to 3, --all takes it.
#   hc     1 → 4 (image health check never passes): `berth update` exits 1 naming the
#          health check; 1 serves again. berth-update.service (what the timer runs)
#          leaves hc on 1 and says so; 1 → 5 (check passes): updated, status healthy.
#   a→b→c  (After=) a and c move to 3, b to 2: `berth update c b a` switches a, then
#          b, which fails: a is put back too, c never switched, all serve version 1.
#          `update --all` reports a, b, c as one group and app as another.
#          All move to 5; berth is killed (-9) in a's soak, after a's restart: the
#          next berth command puts a back and restarts it, all serve their old
#          version; the same update then moves all three.
SCENARIO=gate
. /mnt/host/lib.sh

tag() { cp "$IMAGES/soak$2.tar" "/var/tmp/$1.tar"; }
ref() { echo "oci-archive:/var/tmp/$1.tar:cur"; }
deployment() { readlink "/var/lib/berth/containers/$1"; }
version() { grep -o 'soakd [0-9]' "/var/lib/berth/containers/$1/rootfs/usr/bin/soakd" | head -1 | cut -c7; }

# serving NAME: the soakd versions NAME.service's processes run (read through their
# own root, /proc/PID/root: what runs, whatever the link says), one a line.
serving() {
  local p
  for p in /proc/[0-9]*; do
    grep -qE "/system\.slice/$1\.service(/|$)" "$p/cgroup" 2> /dev/null || continue
    grep -ao 'soakd [0-9]' "$p/root/usr/bin/soakd" 2> /dev/null | head -1 | cut -c7
  done | sort -u
}

# on NAME VERSION DEPLOYMENT: NAME's link is DEPLOYMENT, whose files are VERSION, and
# its service runs VERSION.
on() {
  wait_active "$1.service" 30 || return
  local running
  running=$(serving "$1" | tr '\n' ' ')
  echo "$1: $(deployment "$1"), version $(version "$1"), running ${running:-nothing}"
  [ "$(version "$1")" = "$2" ] && [ "$(deployment "$1")" = "$3" ] && [ "$running" = "$2 " ]
}

install_app() {
  tag app 1
  install_now app "$(ref app)"
}

bad_update_rolls_back() {
  local d out rc
  d=$(deployment app)
  tag app 2
  out=$(berth update app 2>&1)
  rc=$?
  echo "$out"
  [ $rc = 1 ] || { echo "berth update exited $rc, want 1"; return 1; }
  grep -q '^error: rolled back app: exited' <<< "$out" || return
  grep -q 'soakd 2: giving up' <<< "$out" || { echo "no journal excerpt"; return 1; }
  on app 1 "$d"
}

all_skips_the_failed_digest() {
  local d pid out
  d=$(deployment app)
  pid=$(prop app.service MainPID)
  out=$(berth update --all 2>&1) || { echo "$out"; return 1; }
  echo "$out"
  grep -q 'app stays on' <<< "$out" || return
  on app 1 "$d" && [ "$(prop app.service MainPID)" = "$pid" ]
}

status_says_so() {
  berth status app | shows 'rolled back: exited'
}

explicit_update_retries() {
  local d out rc
  d=$(deployment app)
  out=$(berth update app --soak 5s 2>&1)
  rc=$?
  echo "$out"
  [ $rc = 1 ] && grep -q 'retrying' <<< "$out" && grep -q 'rolled back app' <<< "$out" &&
    on app 1 "$d"
}

all_takes_a_new_digest() {
  local d
  d=$(deployment app)
  tag app 3
  berth update --all --soak 3s || return
  [ "$(deployment app)" != "$d" ] && on app 3 "$(deployment app)"
}

install_group() {
  local n
  for n in a b c; do tag $n 1; done
  install_now a "$(ref a)" &&
    install_now b "$(ref b)" --set AFTER=a.service &&
    install_now c "$(ref c)" --set AFTER=b.service
}

group_is_all_or_nothing() {
  local da db dc out rc
  da=$(deployment a) db=$(deployment b) dc=$(deployment c)
  tag a 3
  tag b 2
  tag c 3
  out=$(berth update c b a --soak 5s 2>&1)
  rc=$?
  echo "$out"
  [ $rc = 1 ] || { echo "berth update exited $rc, want 1"; return 1; }
  grep -q '^error: rolled back b: exited' <<< "$out" || return
  grep -q 'also put back, as one group: a on ' <<< "$out" || return
  on a 1 "$da" && on b 1 "$db" && on c 1 "$dc"
}

all_reports_groups() {
  local out
  out=$(berth --json update --all --soak 2s 2> /dev/null)
  echo "$out"
  grep -q '"group": *\[ *"a", *"b", *"c" *\]' <<< "$(tr -d '\n' <<< "$out")" &&
    grep -q '"group": *\[ *"app" *\]' <<< "$(tr -d '\n' <<< "$out")"
}

install_hc() {
  tag hc 1
  install_now hc "$(ref hc)"
}

unhealthy_update_rolls_back() {
  local d out rc
  d=$(deployment hc)
  tag hc 4
  out=$(berth update hc --soak 5s 2>&1)
  rc=$?
  echo "$out"
  [ $rc = 1 ] || { echo "berth update exited $rc, want 1"; return 1; }
  grep -q '^error: rolled back hc: health check failed 3 times: soakd 4: not healthy$' <<< "$out" ||
    return
  grep -q 'status=69' <<< "$out" || { echo "no journal excerpt"; return 1; }
  on hc 1 "$d"
}

# What the timer runs, after the failed update: hc stays (same process), and says so.
timer_does_not_retry() {
  local d pid since
  d=$(deployment hc)
  pid=$(prop hc.service MainPID)
  since=$(date '+%Y-%m-%d %H:%M:%S')
  systemctl start berth-update.service || { systemctl status --no-pager berth-update.service; return 1; }
  journalctl -u berth-update.service --since "$since" -o cat --no-pager |
    shows 'hc stays on .*rolled back before' || return
  on hc 1 "$d" && [ "$(prop hc.service MainPID)" = "$pid" ] &&
    [ "$(prop berth-update.service Result)" = success ]
}

healthy_update_stays() {
  local d
  d=$(deployment hc)
  tag hc 5
  berth update hc --soak 3s || return
  [ "$(deployment hc)" != "$d" ] && on hc 5 "$(deployment hc)" || return
  berth status hc | shows '^health: healthy'
}

# berth update c b a, killed with SIGKILL once a is switched and restarted (in its
# soak); the next berth command (list) recovers: a back on its old deployment and
# restarted there, b and c never switched; then the same update moves all three.
killed_group_update_recovers() {
  local da db dc va vb vc pid upd n i out
  da=$(deployment a) db=$(deployment b) dc=$(deployment c)
  va=$(version a) vb=$(version b) vc=$(version c)
  pid=$(prop a.service MainPID)
  for n in a b c; do tag $n 5; done
  # A soak long enough that berth is still in a's when the loop below sees it.
  berth update c b a --soak $((60 * SLOWDOWN))s > /var/tmp/killed-update.log 2>&1 &
  upd=$!
  for ((i = 0; i < 600 * SLOWDOWN; i++)); do
    [ "$(deployment a)" != "$da" ] && [ "$(prop a.service MainPID)" != "$pid" ] &&
      [ "$(prop a.service MainPID)" != 0 ] && [ "$(serving a)" = 5 ] && break
    sleep 0.1
  done
  echo "a: $(deployment a), running $(serving a), berth pid $upd"
  [ "$(serving a)" = 5 ] || { cat /var/tmp/killed-update.log; kill -9 $upd; return 1; }
  kill -9 $upd
  wait $upd 2> /dev/null
  cat /var/tmp/killed-update.log
  [ -e /var/lib/berth/journal ] || { echo "no journal left by the killed berth"; return 1; }
  out=$(berth list 2>&1) || { echo "$out"; return 1; }
  echo "$out"
  grep -q 'restarting a.service' <<< "$out" || { echo "recovery did not restart a"; return 1; }
  [ ! -e /var/lib/berth/journal ] || { echo "journal still there"; return 1; }
  on a "$va" "$da" && on b "$vb" "$db" && on c "$vc" "$dc" || return
  no_failed_units || return
  berth update c b a --soak 3s || return
  on a 5 "$(deployment a)" && on b 5 "$(deployment b)" && on c 5 "$(deployment c)" &&
    [ "$(deployment a)" != "$da" ] && [ "$(deployment c)" != "$dc" ]
}

phase1() {
  check "install --now app (soak 1)" install_app
  check_with "update --soak" "update to a version that exits 3 s after start: exit 1 naming it, 1 serves again" bad_update_rolls_back
  check_with "update --soak" "update --all does not retry the rolled-back digest" all_skips_the_failed_digest
  check_with "update --soak" "status shows the rolled-back update" status_says_so
  check_with "update --soak" "an explicit update retries it" explicit_update_retries
  check_with "update --soak" "update --all takes the tag once it moves to another digest" all_takes_a_new_digest
  check "install --now hc (soak 1)" install_hc
  check_with "update --soak" "update to a version failing its health check: exit 1 naming the check, 1 serves again" unhealthy_update_rolls_back
  check_with "update --soak" "berth-update.service (the timer's) does not retry the failed digest" timer_does_not_retry
  check_with "update --soak" "update to a version passing its check: stays, status healthy" healthy_update_stays
  check "install a, b after a, c after b" install_group
  check_with "update --soak" "group update a→b→c with a failing b: all back on their old deployments" group_is_all_or_nothing
  check_with "update --soak" "update --all reports a, b, c as one group, app as another" all_reports_groups
  check_with "update --soak" "group update killed (-9) in a's soak: next berth puts a back and restarts it; then all move" killed_group_update_recovers
  check "systemctl --failed is empty" no_failed_units
}

case $1 in
  1) phase1 ;;
esac
finish
