#!/bin/bash
# Scenario 3 (issue 7): lifecycle under systemd.
#   phase 1  install etcd:1, flannel and httpd; update etcd to tag 2 (restart on the new
#            deployment, data kept); update to etcd:broken, whose process exits at once:
#            fails, rolled back automatically, tag 2 serving again; power off.
#   phase 2  after the reboot: etcd:2 up; `berth rollback` to tag 1; `berth status`;
#            uninstall all three; /etc/systemd/system, /etc/tmpfiles.d, host files and
#            /var/lib/berth/containers exactly as before the install.
SCENARIO=3
. /mnt/host/lib.sh
E=oci-archive:$IMAGES/etcd.tar
BEFORE=/var/tmp/berth-scenario3-before.lst

# What install may touch: units and links, tmpfiles entries, host files (/usr/local,
# /etc/NAME*) and the deployments. /var/lib/berth/containers itself (berth's own state
# dir, like its repo) may stay once made; its contents must not.
listing() {
  {
    find /etc/systemd/system /etc/tmpfiles.d /usr/local -printf '%p %y %m %l\n'
    find /etc -maxdepth 1 -name 'etcd*' -o -maxdepth 1 -name 'flannel*' -o -maxdepth 1 -name 'httpd*'
    find /var/lib/berth/containers -mindepth 1 -printf '%p %y %m %l\n'
  } 2> /dev/null | sort
}

deployment() { readlink /var/lib/berth/containers/"$1"; }
image_version() { cat /var/lib/berth/containers/etcd/rootfs/etc/berth-test-image; }

update_to_2() {
  local before after
  before=$(prop etcd.service MainPID)
  berth update etcd --image "$E:2" || return
  wait_active etcd.service 30 || return
  after=$(prop etcd.service MainPID)
  echo "deployment $(deployment etcd), image $(image_version), MainPID $before -> $after"
  [ "$(image_version)" = "etcd 2" ] && [ "$before" != "$after" ] || return
  [ "$(etcd_get /berth/lifecycle)" = kept ] && [ "$(etcdctl /berth/lifecycle)" = kept ]
}

update_to_broken() {
  local d
  d=$(deployment etcd)
  if berth update etcd --image "$E:broken"; then
    echo "berth update to etcd:broken succeeded"
    return 1
  fi
  wait_active etcd.service 30 || return
  echo "deployment $d -> $(deployment etcd), image $(image_version)"
  [ "$(deployment etcd)" = "$d" ] && [ "$(image_version)" = "etcd 2" ] &&
    [ "$(etcd_get /berth/lifecycle)" = kept ]
}

phase1() {
  listing > "$BEFORE"
  check "install --now etcd:1" install_now etcd "$E:1"
  check "etcd answers a put" etcd_put /berth/lifecycle kept
  etcd_put /coreos.com/network/config '{"Network":"10.254.0.0/16"}' > /dev/null
  check "install --now flannel" install_now flannel "oci-archive:$IMAGES/flannel.tar:1"
  check "install httpd" install_only httpd "oci-archive:$IMAGES/httpd.tar:1" --set PORT=8383
  check_with update "update etcd to tag 2: restarted on the new deployment, data kept" update_to_2
  check_with update "update to an image that exits at once fails; rolled back, tag 2 serving" update_to_broken
}

after_reboot() {
  wait_active etcd.service 30 || return
  echo "deployment $(deployment etcd), image $(image_version)"
  [ "$(etcd_get /berth/lifecycle)" = kept ]
}

rollback() {
  local d
  d=$(deployment etcd)
  berth rollback etcd || return
  wait_active etcd.service 30 || return
  echo "deployment $d -> $(deployment etcd), image $(image_version)"
  [ "$(deployment etcd)" != "$d" ] && [ "$(image_version)" = "etcd 1" ] &&
    [ "$(etcd_get /berth/lifecycle)" = kept ]
}

status() {
  berth status etcd | shows active
}

uninstall_all() {
  local n rc=0
  for n in httpd flannel etcd; do uninstall_now $n || rc=1; done
  return $rc
}

units_gone() {
  local n rc=0
  for n in etcd flannel httpd; do
    systemctl is-active "$n.service" && rc=1
    [ -z "$(systemctl list-unit-files --no-legend "$n.*")" ] || { systemctl list-unit-files --no-legend "$n.*"; rc=1; }
  done
  return $rc
}

same_as_before() {
  listing > /var/tmp/after.lst
  diff "$BEFORE" /var/tmp/after.lst
}

phase2() {
  check "etcd up after the reboot, data kept" after_reboot
  check_with update "etcd came back on the updated deployment (tag 2)" test "$(image_version)" = "etcd 2"
  check_with rollback "berth rollback after the reboot: tag 1 serving" rollback
  check_with status "berth status etcd shows the unit state" status
  check "berth uninstall of all three" uninstall_all
  check "units gone from systemd" units_gone
  check "host trees exactly as before the install" same_as_before
  check "systemctl --failed is empty" no_failed_units
}

case $1 in
  1) phase1 ;;
  2) phase2 ;;
esac
finish
