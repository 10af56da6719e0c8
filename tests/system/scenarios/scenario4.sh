#!/bin/bash
# Scenario 4 (issue 8): provisioning a host from a manifest with `berth apply`.
#
# Machine A (berth's binaries copied in, as in scenarios 1-3):
#   offline  on the HOST, the guest not booted: its root filesystem mounted at $R (the
#            overlay a boot uses), `berth --root $R apply $R/etc/berth/manifest.d` of a
#            4-entry manifest (etcd; flannel after etcd; engine requires and after
#            flannel; httpd, start = false, with its socket) from oci-archive files. No
#            systemd, no D-Bus. Checked on the host: units, [Install] links, tmpfiles,
#            deployments, owners, a second apply changing nothing.
#   1        first boot: everything comes up in order by itself. Then the manifest is
#            edited (a value changed, an entry dropped, one added): --plan shows exactly
#            that, apply does exactly that, a second apply is a no-op.
#   2        reboot: the edited host comes up as applied; an image change (update).
# Machine B (no binaries: berth comes from the .deb, handed in as /mnt/host/berth.deb):
#   3        dpkg -i; berth-apply.service enabled by the package; the same manifest
#            dropped into /etc/berth/manifest.d; power off.
#   4        reboot: berth-apply.service provisions the host on this boot.
#
# Image references. A manifest's reference is kept as written (it is also how apply
# tells "unchanged" from "update"), so an oci-archive path must be valid wherever berth
# may read it again: the offline phase runs with the archives at /mnt/images, as the
# guest sees them (harness.rs mounts them there in the offline phase's own mount
# namespace), and every manifest here says oci-archive:/mnt/images/NAME.tar:TAG.
#
# berth's own path. Units exec the berth that rendered them (ExecStart=<its directory>/
# berth-run NAME), so the offline phase runs berth as /usr/bin/berth, where the guest and
# the package have it (harness.rs overlays the host's /usr/bin); the probe check runs it
# from cargo's target directory to show what a --root apply writes then.
#
# flannel needs its network config in etcd before it starts: a plain oneshot unit,
# flannel-config.service (After=etcd, Before=flannel), seeds it on every boot, as a
# cluster's bootstrap would.
SCENARIO=4
. /mnt/host/lib.sh
M=/etc/berth/manifest.d
NETWORK_CONFIG='{"Network":"10.254.0.0/16","Backend":{"Type":"host-gw"}}'

img() { echo "oci-archive:$IMAGES/$1.tar:$2"; }

# write_manifest ROOT: the 4-entry manifest, in two files (merged in name order).
write_manifest() {
  mkdir -p "$1$M" || return
  cat > "$1$M/10-cluster.toml" <<EOF || return
# etcd, then the flanneld stand-in, then the engine, which needs flannel's subnet.
[[container]]
name = "etcd"
image = "$(img etcd 1)"

[[container]]
name = "flannel"
image = "$(img flannel 1)"
after = ["etcd"]

[[container]]
name = "engine"
image = "$(img engine 1)"
requires = ["flannel"]
after = ["flannel"]
EOF
  cat > "$1$M/20-web.toml" <<EOF
[[container]]
name = "httpd"
image = "$(img httpd 1)"
set = { PORT = "8181" }
start = false   # socket-activated
EOF
}

# write_seed ROOT: flannel-config.service, enabled (the link systemctl enable makes).
write_seed() {
  local r=$1
  mkdir -p "$r/usr/local/sbin" "$r/etc/systemd/system/multi-user.target.wants" || return
  cat > "$r/usr/local/sbin/flannel-config-seed" <<EOF || return
#!/bin/sh
# Puts flannel's network config into etcd (waits for etcd up to 120 s).
i=0
until curl -fsS -m 2 -X POST -d '{"key":"$(b64 /coreos.com/network/config)","value":"$(b64 "$NETWORK_CONFIG")"}' $ETCD/v3/kv/put 2> /tmp/seed.err; do
  i=\$((i + 1))
  [ \$i -lt 600 ] || { cat /tmp/seed.err; exit 1; }
  sleep 0.2
done
echo
echo "flannel network config seeded after \$i retries"
EOF
  chmod 755 "$r/usr/local/sbin/flannel-config-seed" || return
  cat > "$r/etc/systemd/system/flannel-config.service" <<'EOF' || return
[Unit]
Description=flannel's network config in etcd (cluster bootstrap)
After=etcd.service
Before=flannel.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/flannel-config-seed
TimeoutStartSec=150

[Install]
WantedBy=multi-user.target
EOF
  ln -sfn /etc/systemd/system/flannel-config.service \
    "$r/etc/systemd/system/multi-user.target.wants/flannel-config.service"
}

# actions: "name=action ..." in the order of `berth apply --json` (stdin).
actions() {
  awk -F'"' '/"name":/ { n = $4 } /"action":/ { printf "%s%s=%s", sep, n, $4; sep = " " } END { print "" }'
}

# apply_json FILE ARGS...: berth apply --json ARGS into FILE; prints it.
apply_json() {
  local out=$1
  shift
  berth apply --json "$@" > "$out" || { cat "$out"; return 1; }
  cat "$out"
}

# expect_plan FILE "name=action ..." CHANGED: the steps (in order) and "changed".
expect_plan() {
  local got
  got=$(actions < "$1")
  echo "steps: $got"
  [ "$got" = "$2" ] || { echo "expected: $2"; return 1; }
  grep -q "\"changed\": $3" "$1" || { echo "expected \"changed\": $3"; return 1; }
}

# What an apply may touch: units and links, tmpfiles entries, host files, deployments,
# the owners record. Path, type, mtime, size, link target.
snapshot() {
  find /etc/systemd/system /etc/tmpfiles.d /usr/local/bin /var/lib/berth/containers \
    /var/lib/berth/owners.json -printf '%p %y %T@ %s %l\n' 2> /dev/null | sort
}

# noop MANIFEST: a second apply changes nothing: "changed": false, every step unchanged,
# not one file (or directory) under the snapshot's paths touched. Its time is a metric.
noop() {
  local before after t0 ms
  before=$(snapshot)
  t0=$(now)
  apply_json /tmp/noop.json "$1" || return
  ms=$(awk -v s="$(since "$t0")" 'BEGIN { printf "%.0f", s * 1000 }')
  metric "apply_noop_ms_$(cat /mnt/host/phase 2> /dev/null || echo offline)" "$ms" ms
  after=$(snapshot)
  grep -q '"changed": false' /tmp/noop.json || { echo 'not "changed": false'; return 1; }
  ! actions < /tmp/noop.json | grep -v -q -E '^([a-z0-9-]+=unchanged ?)*$' || { echo "a step is not unchanged"; return 1; }
  diff <(echo "$before") <(echo "$after") || { echo "files changed"; return 1; }
  echo "no-op apply: ${ms} ms, $(echo "$before" | wc -l) paths unchanged"
}

# ---- offline, on the host ---------------------------------------------------------------

# no_glib_criticals [FILE]: no GLib assertion messages (the journal of this boot, or FILE).
no_glib_criticals() {
  local found
  if [ $# = 1 ]; then found=$(grep -E "GLib[-A-Za-z]*-CRITICAL|assertion '.*' failed" "$1"); else
    found=$(journalctl -b --no-pager | grep -E "GLib[-A-Za-z]*-CRITICAL|assertion '.*' failed")
  fi
  [ -z "$found" ] || { echo "$found" | head -5; return 1; }
}

no_systemd() {
  echo "PID 1: $(cat /proc/1/comm); /run/systemd/system: $(ls -d /run/systemd/system 2>&1)"
  [ ! -d /run/systemd/system ]
}

# berth run from where cargo built it (not from the root's /usr/bin): the units it
# writes must still exec programs that exist inside the root, not the build host's path.
probe_exec_path() {
  local p=/mnt/probe unit prog rc=0
  mkdir -p "$p/usr/bin" "$p$M" || return
  ln /mnt/bin/berth /mnt/bin/berth-run "$p/usr/bin/" || return
  printf '[[container]]\nname = "probe"\nimage = "%s"\n' "$(img httpd 1)" > "$p$M/probe.toml"
  DBUS_SYSTEM_BUS_ADDRESS=unix:path=/nonexistent "$BERTH_BUILT" --root "$p" apply "$p$M" || return
  unit=$p/etc/systemd/system/probe.service
  grep -E '^Exec(Start|Stop)=' "$unit" || return
  for prog in $(sed -n 's/^Exec\(Start\|Stop\)=\([^ ]*\).*/\2/p' "$unit"); do
    [ -x "$p$prog" ] || { echo "$prog: not in the root (berth was $BERTH_BUILT)"; rc=1; }
  done
  return $rc
}

offline_apply() {
  DBUS_SYSTEM_BUS_ADDRESS=unix:path=/nonexistent berth --root "$R" apply --json "$R$M" > /tmp/offline.json 2> /tmp/offline.err ||
    { cat /tmp/offline.json /tmp/offline.err; return 1; }
  grep -v '^{"event"' /tmp/offline.err
  no_glib_criticals /tmp/offline.err || return
  expect_plan /tmp/offline.json "etcd=install flannel=install engine=install httpd=install" true
}

units_written() {
  local u rc=0 s=$R/etc/systemd/system
  for u in etcd flannel engine httpd; do
    grep -H -E '^(ExecStart|After|Before|Requires)=' "$s/$u.service" || rc=1
    grep -q "^ExecStart=/usr/bin/berth-run $u\$" "$s/$u.service" || { echo "$u: ExecStart"; rc=1; }
  done
  grep -H '^ListenStream=' "$s/httpd.socket" || rc=1
  grep -q '^ListenStream=127.0.0.1:8181$' "$s/httpd.socket" || rc=1
  grep -q '^After=flannel.service$' "$s/engine.service" && grep -q '^Requires=flannel.service$' "$s/engine.service" || rc=1
  grep -q '^After=etcd.service$' "$s/flannel.service" || rc=1
  return $rc
}

links() {
  local s=$R/etc/systemd/system l rc=0
  for l in multi-user.target.wants/etcd.service multi-user.target.wants/flannel.service \
    multi-user.target.wants/engine.service multi-user.target.wants/httpd.service \
    engine.service.requires/flannel.service sockets.target.wants/httpd.socket; do
    echo "$l -> $(readlink "$s/$l")"
    [ "$(readlink "$s/$l")" = "/etc/systemd/system/${l#*/}" ] || rc=1
  done
  # The host's systemctl reads the same root offline (it needs no running systemd).
  if command -v systemctl > /dev/null; then
    systemctl --root="$R" is-enabled etcd.service flannel.service engine.service httpd.service httpd.socket || rc=1
  fi
  return $rc
}

deployments() {
  local n rc=0 c=$R/var/lib/berth/containers
  for n in etcd flannel engine httpd; do
    echo "$n -> $(readlink "$c/$n"): $(ls "$c/$n/" | tr '\n' ' ')"
    [ -f "$c/$n/config.json" ] && [ -d "$c/$n/rootfs/usr/bin" ] || rc=1
  done
  for n in etcd flannel engine; do
    cat "$R/etc/tmpfiles.d/$n.conf" || rc=1
  done
  ls -l "$R/usr/local/bin/etcdctl" || rc=1
  return $rc
}

# Apply records which manifest owns each entry; the guest knows its manifest as $M.
owners() {
  local n rc=0
  cat "$R/var/lib/berth/owners.json"
  echo
  for n in etcd flannel engine httpd; do
    grep -q "\"$n\": \"$M\"" "$R/var/lib/berth/owners.json" || rc=1
  done
  [ $rc = 0 ] || echo "owner recorded: $(sed -n 's/^ *"etcd": "\(.*\)",*$/\1/p' "$R/var/lib/berth/owners.json") (a path on the build host), not $M"
  return $rc
}

offline_noop() {
  local before after
  before=$(cd "$R" && find etc/systemd/system etc/tmpfiles.d var/lib/berth/containers var/lib/berth/owners.json -printf '%p %y %T@ %s %l\n' | sort)
  DBUS_SYSTEM_BUS_ADDRESS=unix:path=/nonexistent berth --root "$R" apply --json "$R$M" > /tmp/noop.json ||
    { cat /tmp/noop.json; return 1; }
  after=$(cd "$R" && find etc/systemd/system etc/tmpfiles.d var/lib/berth/containers var/lib/berth/owners.json -printf '%p %y %T@ %s %l\n' | sort)
  expect_plan /tmp/noop.json "etcd=unchanged flannel=unchanged engine=unchanged httpd=unchanged" false || return
  diff <(echo "$before") <(echo "$after")
}

phase_offline() {
  [ -n "${R:-}" ] && [ -d "$R/etc/systemd" ] || {
    record fail "guest root filesystem mounted at \$R" 0 "R=${R:-unset}"
    return
  }
  echo "guest root at $R; berth at $(command -v berth) (built: $BERTH_BUILT)"
  check "host: no systemd running" no_systemd
  check "offline apply with berth outside the root: units exec programs in the root" probe_exec_path
  write_manifest "$R" && write_seed "$R"
  check "berth --root R apply: 4 entries (oci-archive), no systemd, no D-Bus" offline_apply
  check "units rendered: ExecStart=/usr/bin/berth-run, ordering, httpd.socket" units_written
  check "[Install] links as systemctl --root enable makes them" links
  check "deployments, tmpfiles entries, host files" deployments
  check "owners.json names the manifest as the guest sees it ($M)" owners
  check "a second offline apply: all unchanged, no file touched" offline_noop
}

# ---- machine A, first boot: up by itself; edit the manifest -----------------------------



engine_saw_subnet() {
  cat /run/engine/seen || return
  grep -q 'FLANNEL_SUBNET=10.254.42.1/24' /run/engine/seen
}

boot_metrics() { cluster_metric "boot${1}_to_cluster_active"; }

get_page() { curl -fsS -m 5 "http://127.0.0.1:$1/" | shows "berth httpd $2"; }

# poll_page PORT VERSION
poll_page() {
  local i
  for ((i = 0; i < 50; i++)); do
    get_page "$1" "$2" > /dev/null 2>&1 && break
    sleep 0.1
  done
  get_page "$1" "$2"
}

closed() {
  if curl -fsS -m 2 "http://127.0.0.1:$1/" > /dev/null 2>&1; then
    echo "port $1 still answers"
    return 1
  fi
  echo "port $1 closed"
}

listed() {
  berth list | shows etcd || return
  local n
  for n in "$@"; do berth list --json | grep -q "\"$n\"" || { echo "$n not listed"; return 1; }; done
}

# The manifest as berth --root wrote it, seen from the booted guest: nothing to do.
provisioned_plan() {
  apply_json /tmp/plan0.json --plan "$M" || return
  expect_plan /tmp/plan0.json "etcd=unchanged flannel=unchanged engine=unchanged httpd=unchanged" false
}

# The edit: httpd's PORT 8181 -> 8282 (a value), engine dropped, web (httpd:2) added.
edit_manifest() {
  cat > "$M/10-cluster.toml" <<EOF
[[container]]
name = "etcd"
image = "$(img etcd 1)"

[[container]]
name = "flannel"
image = "$(img flannel 1)"
after = ["etcd"]
EOF
  cat > "$M/20-web.toml" <<EOF
[[container]]
name = "httpd"
image = "$(img httpd 1)"
set = { PORT = "8282" }
start = false

[[container]]
name = "web"
image = "$(img httpd 2)"
set = { PORT = "8383" }
EOF
}

EDITED="etcd=unchanged flannel=unchanged httpd=reconfigure web=install engine=remove"

edited_plan() {
  local before after
  before=$(snapshot)
  apply_json /tmp/plan1.json --plan "$M" || return
  after=$(snapshot)
  expect_plan /tmp/plan1.json "$EDITED" true || return
  diff <(echo "$before") <(echo "$after") || { echo "--plan changed files"; return 1; }
}

edited_apply() {
  ETCD_PID=$(prop etcd.service MainPID) FLANNEL_PID=$(prop flannel.service MainPID)
  UNITS_BEFORE=$(ls -l --time-style=+%s.%N /etc/systemd/system/etcd.service /etc/systemd/system/flannel.service)
  apply_json /tmp/apply1.json "$M" || return
  expect_plan /tmp/apply1.json "$EDITED" true
}

engine_gone() {
  local rc=0 p
  echo "engine.service: $(prop engine.service LoadState)/$(systemctl is-active engine.service)"
  [ "$(prop engine.service LoadState)" = not-found ] || rc=1
  [ "$(systemctl is-active engine.service)" != active ] || rc=1
  for p in /etc/systemd/system/engine.service /etc/systemd/system/multi-user.target.wants/engine.service \
    /etc/tmpfiles.d/engine.conf /var/lib/berth/containers/engine /var/lib/berth/containers/engine.0; do
    [ ! -e "$p" ] && [ ! -L "$p" ] || { echo "left: $p"; rc=1; }
  done
  pgrep -f /usr/bin/engined && { echo "engined still runs"; rc=1; }
  return $rc
}

httpd_moved() {
  grep '^ListenStream=' /etc/systemd/system/httpd.socket
  systemctl show -p Listen httpd.socket
  poll_page 8282 1 || return
  closed 8181
}

web_up() {
  all_active web.socket || return
  poll_page 8383 2 || return
  wait_active web.service 10
}

untouched() {
  local e f now
  e=$(prop etcd.service MainPID) f=$(prop flannel.service MainPID)
  now=$(ls -l --time-style=+%s.%N /etc/systemd/system/etcd.service /etc/systemd/system/flannel.service)
  echo "MainPID etcd $ETCD_PID -> $e, flannel $FLANNEL_PID -> $f"
  [ "$e" = "$ETCD_PID" ] && [ "$f" = "$FLANNEL_PID" ] || return
  diff <(echo "$UNITS_BEFORE") <(echo "$now")
}

phase1() {
  check "first boot: etcd, flannel, engine, flannel-config active; httpd.socket listening" \
    all_active etcd.service flannel.service engine.service flannel-config.service httpd.socket
  boot_metrics 1
  check "activation order etcd < flannel < engine" cluster_order
  check "engine saw the subnet flannel wrote" engine_saw_subnet
  check "httpd (start = false, socket enabled) serves on 8181" poll_page 8181 1
  check "systemctl --failed is empty" no_failed_units
  check "no GLib CRITICAL in this boot's journal" no_glib_criticals
  check "berth list: the four containers" listed etcd flannel engine httpd
  check "apply --plan of the manifest as provisioned offline: all unchanged, nothing to do" provisioned_plan
  # Takes the entries over for $M where the offline apply recorded another path (the
  # owners check of the offline phase): without it the dropped entry would not be
  # removed below. A no-op where that check passed.
  berth apply "$M" || record fail "apply of the manifest as provisioned" 0 "berth apply $M failed"
  etcd_put /berth/provisioned yes > /dev/null
  edit_manifest
  check "apply --plan after the edit: $EDITED; no file touched" edited_plan
  check "apply does exactly that" edited_apply
  check "engine stopped and removed: unit, link, tmpfiles entry, deployment" engine_gone
  check "httpd reconfigured: its socket moved to 8282, 8181 closed" httpd_moved
  check "web installed and started: web.socket, the first request serves httpd 2 on 8383" web_up
  check "etcd and flannel untouched: same MainPID, same unit files" untouched
  check "a second apply is a no-op: changed false, no file touched" noop "$M"
  skip "a failpoint in the middle of apply leaves every entry as it was" \
    "BERTH_FAILPOINT exists in debug builds only; the system tests run release binaries (tests/apply.rs covers it)"
  check "systemctl --failed is empty" no_failed_units
}

# ---- machine A, reboot: the edited host; an update ----------------------------------------

after_reboot() {
  all_active etcd.service flannel.service httpd.socket web.socket || return
  [ "$(prop engine.service LoadState)" = not-found ] || { echo "engine.service is back"; return 1; }
  poll_page 8282 1 && poll_page 8383 2 && closed 8181
}

image_version() { cat /var/lib/berth/containers/etcd/rootfs/etc/berth-test-image; }

update_plan() {
  sed -i "s|$(img etcd 1)|$(img etcd 2)|" "$M/10-cluster.toml" || return
  apply_json /tmp/plan2.json --plan "$M" || return
  expect_plan /tmp/plan2.json "etcd=update flannel=unchanged httpd=unchanged web=unchanged" true
}

update_apply() {
  local before after
  before=$(prop etcd.service MainPID)
  apply_json /tmp/apply2.json "$M" || return
  expect_plan /tmp/apply2.json "etcd=update flannel=unchanged httpd=unchanged web=unchanged" true || return
  wait_active etcd.service 30 || return
  after=$(prop etcd.service MainPID)
  echo "etcd: image $(image_version), MainPID $before -> $after"
  [ "$(image_version)" = "etcd 2" ] && [ "$before" != "$after" ] || return
  [ "$(etcd_get /berth/provisioned)" = yes ]
}

phase2() {
  check "after the reboot: etcd, flannel, httpd.socket, web.socket up; engine gone; pages on 8282 and 8383" after_reboot
  check "systemctl --failed is empty" no_failed_units
  check "manifest etcd:1 -> etcd:2: --plan shows etcd update, the rest unchanged" update_plan
  check "apply updates etcd: tag 2, restarted, data kept" update_apply
  check "a second apply is a no-op: changed false, no file touched" noop "$M"
  check "systemctl --failed is empty after the update" no_failed_units
}

# ---- machine B: the package, provisioning at boot -------------------------------------------

package_installed() {
  dpkg -i /mnt/host/berth.deb || return
  dpkg -s berth | grep -E '^(Status|Version):'
  ls -l /usr/bin/berth /usr/bin/berth-run /usr/libexec/berth/berth-core && berth --version &&
    berth images  # the front execs the package's full binary
}

package_units() {
  echo "berth-apply.service: $(systemctl is-enabled berth-apply.service); berth-update.timer: $(systemctl is-enabled berth-update.timer)"
  [ "$(systemctl is-enabled berth-apply.service)" = enabled ] &&
    [ "$(systemctl is-enabled berth-update.timer)" = disabled ]
}

# With /etc/berth/manifest.d empty, berth-apply.service does nothing (its condition).
empty_is_nothing() {
  ls -A "$M"
  systemctl start berth-apply.service || return
  echo "ConditionResult=$(prop berth-apply.service ConditionResult) ActiveState=$(prop berth-apply.service ActiveState)"
  [ "$(prop berth-apply.service ConditionResult)" = no ] && [ ! -e /var/lib/berth/owners.json ]
}

drop_manifest() {
  write_manifest "" && write_seed "" || return
  systemctl daemon-reload && systemctl is-enabled flannel-config.service || return
  ls -l "$M"
}

phase3() {
  [ -f /mnt/host/berth.deb ] || { record fail "the .deb handed in" 0 "no /mnt/host/berth.deb"; return; }
  check "dpkg -i berth.deb (its dependencies are in the guest)" package_installed
  check "the package enables berth-apply.service, not berth-update.timer" package_units
  check "berth-apply.service does nothing while $M is empty" empty_is_nothing
  check "manifest dropped into $M; flannel-config.service enabled" drop_manifest
}

apply_succeeded() {
  systemctl status --no-pager berth-apply.service | head -12
  [ "$(prop berth-apply.service Result)" = success ] &&
    [ "$(prop berth-apply.service ActiveState)" = active ] &&
    [ "$(prop berth-apply.service ExecMainStatus)" = 0 ]
}

# The four entries staged, then switched one by one (lines as they happen), then the
# summary: four installs and "Applied.".
apply_in_journal() {
  local j
  j=$(journalctl -b --no-pager -u berth-apply.service -o cat)
  echo "$j"
  grep -qx 'Applied.' <<<"$j" || return
  [ "$(grep -cE '^install +(etcd|flannel|engine|httpd) +not installed' <<<"$j")" = 4 ] || return
  [ "$(grep -cE '^install +(etcd|flannel|engine|httpd) +staged$' <<<"$j")" = 4 ] || return
  [ "$(grep -cE '^install +(etcd|flannel|engine|httpd) +switched$' <<<"$j")" = 4 ] || return
  # etcd switched before flannel, flannel before engine.
  grep -E '^install +(etcd|flannel|engine) +switched$' <<<"$j" | awk '{print $2}' | tr '\n' ' ' |
    shows '^etcd flannel engine $'
}

apply_metrics() {
  local a b
  a=$(prop berth-apply.service ExecMainStartTimestampMonotonic)
  b=$(prop berth-apply.service ExecMainExitTimestampMonotonic)
  metric berth_apply_at_boot "$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.3f", (b - a) / 1e6 }')" s
}

# start = false: apply does not start the units (not even the socket); they are enabled
# and come up on the next boot.
httpd_not_started() {
  echo "httpd.service: $(systemctl is-enabled httpd.service)/$(systemctl is-active httpd.service); httpd.socket: $(systemctl is-enabled httpd.socket)/$(systemctl is-active httpd.socket)"
  [ "$(systemctl is-enabled httpd.socket)" = enabled ] && [ "$(systemctl is-enabled httpd.service)" = enabled ] &&
    [ "$(systemctl is-active httpd.socket)" != active ] && [ "$(systemctl is-active httpd.service)" != active ]
}

owned_by_manifest() {
  cat /var/lib/berth/owners.json
  echo
  grep -c "\": \"$M\"" /var/lib/berth/owners.json | shows '^4$'
}

phase4() {
  check "berth-apply.service ran at boot and succeeded" apply_succeeded
  apply_metrics
  check "journalctl -u berth-apply: 4 entries staged, switched in order, Applied." apply_in_journal
  check "provisioned at boot: etcd, flannel, engine, flannel-config active" \
    all_active etcd.service flannel.service engine.service flannel-config.service
  boot_metrics 2
  check "activation order etcd < flannel < engine" cluster_order
  check "engine saw the subnet flannel wrote" engine_saw_subnet
  check "httpd (start = false): installed and enabled, neither socket nor service started" httpd_not_started
  check "units exec the package's /usr/bin/berth-run" grep -q '^ExecStart=/usr/bin/berth-run etcd$' /etc/systemd/system/etcd.service
  check "owners.json: the four entries owned by $M" owned_by_manifest
  check "apply again: a no-op" noop "$M"
  check "no GLib CRITICAL in this boot's journal (berth-apply included)" no_glib_criticals
  check "systemctl --failed is empty" no_failed_units
}

case $1 in
  offline) phase_offline ;;
  1) phase1 ;;
  2) phase2 ;;
  3) phase3 ;;
  4) phase4 ;;
esac
finish
