#!/bin/bash
# The update gate (issue 17): soak, automatic rollback, failed digests, group updates.
# Each container follows tag `cur` of its own copy of an archive in /var/tmp; copying
# another soakN.tar over it moves the tag (1 and 3 serve, 2 exits 3 s after READY=1).
#   app    1 → 2: `berth update` exits 1 naming the reason; 1 serves again on its
#          old deployment. `update --all` does not retry that digest (status says
#          so); an explicit update does; once the tag moves to 3, --all takes it.
#   a→b→c  (After=) a and c move to 3, b to 2: `berth update c b a` switches a, then
#          b, which fails: a is put back too, c never switched, all serve version 1.
#          `update --all` reports a, b, c as one group and app as another.
SCENARIO=gate
. /mnt/host/lib.sh

tag() { cp "$IMAGES/soak$2.tar" "/var/tmp/$1.tar"; }
ref() { echo "oci-archive:/var/tmp/$1.tar:cur"; }
deployment() { readlink "/var/lib/berth/containers/$1"; }
version() { grep -o 'soakd [0-9]' "/var/lib/berth/containers/$1/rootfs/usr/bin/soakd" | head -1 | cut -c7; }

# on NAME VERSION DEPLOYMENT: NAME serves VERSION from DEPLOYMENT.
on() {
  wait_active "$1.service" 30 || return
  echo "$1: $(deployment "$1"), version $(version "$1")"
  [ "$(version "$1")" = "$2" ] && [ "$(deployment "$1")" = "$3" ]
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

phase1() {
  check "install --now app (soak 1)" install_app
  check_with "update --soak" "update to a version that exits 3 s after start: exit 1 naming it, 1 serves again" bad_update_rolls_back
  check_with "update --soak" "update --all does not retry the rolled-back digest" all_skips_the_failed_digest
  check_with "update --soak" "status shows the rolled-back update" status_says_so
  check_with "update --soak" "an explicit update retries it" explicit_update_retries
  check_with "update --soak" "update --all takes the tag once it moves to another digest" all_takes_a_new_digest
  check "install a, b after a, c after b" install_group
  check_with "update --soak" "group update a→b→c with a failing b: all back on their old deployments" group_is_all_or_nothing
  check_with "update --soak" "update --all reports a, b, c as one group, app as another" all_reports_groups
  check "systemctl --failed is empty" no_failed_units
}

case $1 in
  1) phase1 ;;
esac
finish
