#!/bin/bash
# Scenario 1 (issues 7, 14): cluster bootstrap at early boot, with etcd and flannel
# shaped like the Project Atomic system-container images.
#   phase 1  install etcd, the flanneld stand-in and a plain engine unit (docker.service);
#            start them, seed flannel's network config in etcd; the guest powers off.
#   phase 2  the same guest booted again: check from the host side that systemd
#            brought all three up in order at boot, what the atomic shapes give the host
#            (hostfs dirs, docker's drop-in and its removal, berth's Delegate/KillMode
#            drop-in), then time etcd's start → serving through berth against crun.
SCENARIO=1
. /mnt/host/lib.sh
# etcd and flannel in the shapes of the atomic images (tests/system/atomic_images.rs).
ETCD_IMAGE=oci-archive:$IMAGES/etcd.tar:atomic
FLANNEL_IMAGE=oci-archive:$IMAGES/flannel.tar:atomic
NETWORK_KEY=/atomic.io/network/config
NETWORK_CONFIG='{"Network":"10.254.0.0/16","Backend":{"Type":"host-gw"}}'
DROPIN=/etc/systemd/system/docker.service.d/flannel.conf
CLUSTER="etcd.service flannel.service docker.service"

# The engine stand-in is named docker.service, as flannel's unit (Before=docker.service,
# RequiredBy=docker.service, docker.service.d/flannel.conf) expects. It uses what
# flannel wrote: subnet.env and the docker options file its drop-in names.
write_engine() {
  cat > /etc/systemd/system/docker.service <<'UNIT'
[Unit]
Description=container engine stand-in (docker.service; uses flannel's subnet)

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh -c '. /run/flannel/subnet.env && . /run/flannel/docker && mkdir -p /run/engine && echo "FLANNEL_NETWORK=$$FLANNEL_NETWORK FLANNEL_SUBNET=$$FLANNEL_SUBNET DOCKER_NETWORK_OPTIONS=$$DOCKER_NETWORK_OPTIONS" > /run/engine/seen && echo "engine stand-in: using subnet $$FLANNEL_SUBNET"'

[Install]
WantedBy=multi-user.target
UNIT
  systemctl daemon-reload && systemctl enable docker.service
}

enabled() {
  systemctl is-enabled $CLUSTER || return
  ls -l /etc/systemd/system/docker.service.requires/flannel.service \
    /etc/systemd/system/multi-user.target.wants/etcd.service \
    /etc/systemd/system/multi-user.target.wants/flannel.service
}

phase1() {
  check "guest has no container daemon or runtime" no_container_daemon
  check "berth pull etcd from an oci-archive" berth pull "$ETCD_IMAGE"
  check "engine stand-in docker.service written and enabled" write_engine
  check "install --now etcd (atomic-shaped: Type=simple, hostfs etcd.conf)" install_now etcd "$ETCD_IMAGE"
  check "etcd answers a put (seed flannel's network config)" retry_put "$NETWORK_KEY" "$NETWORK_CONFIG"
  check "install --now flannel (atomic-shaped: hostfs dirs, docker drop-in)" install_now flannel "$FLANNEL_IMAGE"
  check "docker stand-in starts after flannel" systemctl start docker.service
  check "units and [Install] links enabled" enabled
  check "docker stand-in saw flannel's subnet (first boot)" grep FLANNEL_SUBNET=10.254.42.1/24 /run/engine/seen
}

# retry_put KEY VALUE: etcd is Type=simple (active before it serves): put within 30 s.
retry_put() {
  local i
  for ((i = 0; i < 300 * SLOWDOWN; i++)); do
    etcd_put "$1" "$2" 2> /dev/null && return
    sleep 0.1
  done
  etcd_put "$1" "$2"
}

engine_saw_subnet() {
  cat /run/engine/seen /run/flannel/subnet.env || return
  grep -q 'FLANNEL_SUBNET=10.254.42.1/24' /run/engine/seen &&
    grep -q 'bip=10.254.42.1/24' /run/engine/seen &&
    grep -q 'FLANNEL_SUBNET=10.254.42.1/24' /run/flannel/subnet.env
}

put_get() {
  local v="reboot-$(date +%s%N)"
  etcd_put /berth/test "$v" > /dev/null || return
  [ "$(etcd_get /berth/test)" = "$v" ] && [ -n "$(etcd_get "$NETWORK_KEY")" ]
}

# tmpfiles.template with ${HOST_UID}/${HOST_GID}, rendered for root; the member dir
# inside the one bound at /var/lib/etcd.
state_dir() {
  ls -ld /var/lib/etcd /var/lib/etcd/etcd.etcd /var/lib/etcd/etcd.etcd/member || return
  cat /etc/tmpfiles.d/etcd.conf
  grep -q '^d /var/lib/etcd/etcd.etcd 0700 0 0' /etc/tmpfiles.d/etcd.conf &&
    grep -q '^Z /var/lib/etcd/etcd.etcd 0700 0 0' /etc/tmpfiles.d/etcd.conf
}

# renameFiles /etc/etcd/etcd.conf → $CONF_DIRECTORY/$NAME/etcd.conf (= /etc/etcd), bound
# read-only at /etc/etcd; etcd runs with its settings (election timeout 200 ms).
etcd_conf() {
  ls -l /etc/etcd/etcd.conf || return
  grep -q '^ETCD_ELECTION_TIMEOUT=200$' /etc/etcd/etcd.conf || return
  berth exec etcd -- /bin/sh -c 'cat /etc/etcd/etcd.conf > /dev/null && ! touch /etc/etcd/probe' || return
  journalctl -b --no-pager -u etcd.service | grep -m1 -i 'election.*200\|200ms' || true
}

# etcd's unit as the image wrote it: Type=simple, RuntimeDirectory=etcd.
etcd_unit() {
  systemctl show -p Type -p RuntimeDirectory etcd.service
  [ "$(prop etcd.service Type)" = simple ] && [ "$(prop etcd.service RuntimeDirectory)" = etcd ] &&
    [ -d /run/etcd ]
}

# /usr/local/bin/etcdctl from the image's hostfs, renamed and rendered.
host_client() {
  ls -l /usr/local/bin/etcdctl || return
  head -3 /usr/local/bin/etcdctl
  /usr/local/bin/etcdctl "$NETWORK_KEY" | shows 10.254.0.0/16
}

read_only_root() {
  local out
  out=$(berth exec etcd -- /bin/sh -c 'touch /berth-probe' 2>&1)
  echo "$out"
  grep -qi 'read-only' <<< "$out"
}

# Delegate=yes and KillMode=mixed as systemd sees them, from berth's drop-in
# NAME.service.d/*.conf: the image's own unit file has neither key.
berth_dropin() {
  local unit=$1 f=/etc/systemd/system/$1
  systemctl show -p Delegate -p KillMode -p DropInPaths "$unit"
  if grep -E '^(Delegate|KillMode)=' "$f"; then
    echo "$f (the image's unit) says Delegate=/KillMode= itself"
    return 1
  fi
  [ "$(prop "$unit" Delegate)" = yes ] && [ "$(prop "$unit" KillMode)" = mixed ] &&
    prop "$unit" DropInPaths | grep -q "/etc/systemd/system/$unit.d/"
}

# flannel's unit as the image wrote it.
flannel_unit() {
  systemctl show -p Type -p NotifyAccess -p RuntimeDirectory -p Before -p ExecStopPost flannel.service |
    cut -c1-200
  [ "$(prop flannel.service Type)" = notify ] && [ "$(prop flannel.service NotifyAccess)" = all ] &&
    [ "$(prop flannel.service RuntimeDirectory)" = flannel ] &&
    prop flannel.service Before | grep -qw docker.service
}

# hostfs /etc/flanneld: an empty directory in the image, on the host, bound rw into the
# container, holding the lease flannel wrote; /etc/sysconfig/flanneld read by flannel.
flanneld_dir() {
  local img=/var/lib/berth/containers/flannel/rootfs/exports/hostfs/etc/flanneld
  ls -la /etc/flanneld "$img" || return
  [ -z "$(ls -A "$img")" ] || { echo "$img is not empty in the image"; return 1; }
  cat /etc/flanneld/lease || return
  grep -q '^subnet 10.254.42.1/24$' /etc/flanneld/lease
}

sysconfig_file() {
  cat /etc/sysconfig/flanneld || return
  grep -q FLANNEL_ETCD_PREFIX= /etc/sysconfig/flanneld &&
    in_journal flannel.service '/etc/sysconfig/flanneld says http://127.0.0.1:2379 /atomic.io/network'
}

# flannel's process as its config says: the host's pid namespace (no pid namespace),
# CAP_NET_ADMIN (bit 12) effective and ambient, no_new_privs off.
flannel_process() {
  local pid st
  pid=$(pgrep -f /usr/bin/flanneld-run | head -1)
  [ -n "$pid" ] || { echo "no flanneld-run process"; return 1; }
  st=$(grep -E '^(CapEff|CapAmb|NoNewPrivs)' "/proc/$pid/status")
  echo "pid $pid: $st; pid ns $(readlink "/proc/$pid/ns/pid") (PID 1: $(readlink /proc/1/ns/pid))"
  [ "$(readlink "/proc/$pid/ns/pid")" = "$(readlink /proc/1/ns/pid)" ] || return
  grep -q 'NoNewPrivs:[[:space:]]*0' <<< "$st" || return
  local eff amb
  eff=$(awk '/^CapEff/ { print $2 }' <<< "$st")
  amb=$(awk '/^CapAmb/ { print $2 }' <<< "$st")
  (((0x$eff >> 12) & 1)) && (((0x$amb >> 12) & 1))
}

# docker's drop-in, written by flannel through its rw bind of docker.service.d, and what
# systemd makes of it after a reload.
docker_dropin() {
  cat "$DROPIN" || return
  grep -q '^EnvironmentFile=-/run/flannel/docker$' "$DROPIN" || return
  systemctl daemon-reload || return
  systemctl show -p DropInPaths -p EnvironmentFiles docker.service
  prop docker.service DropInPaths | grep -q "$DROPIN" &&
    prop docker.service EnvironmentFiles | grep -q /run/flannel/docker
}

# Stopping flannel (docker.service goes with it: RequiredBy) runs its ExecStopPost, which
# removes the drop-in; flannel ends inactive, not failed.
stop_removes_dropin() {
  systemctl stop flannel.service || return
  echo "flannel: $(systemctl is-active flannel.service), docker: $(systemctl is-active docker.service)"
  ls -l "$DROPIN" 2>&1
  [ ! -e "$DROPIN" ] && [ "$(systemctl is-active flannel.service)" = inactive ]
}

# The tmpfiles `r` line (applied at boot by systemd-tmpfiles --remove): a stale drop-in
# left behind is removed. Then docker.service brings flannel back, drop-in and all.
tmpfiles_r() {
  grep "^r $DROPIN" /etc/tmpfiles.d/flannel.conf || return
  echo '# stale' > "$DROPIN"
  systemd-tmpfiles --remove /etc/tmpfiles.d/flannel.conf
  ls -l "$DROPIN" 2>&1
  [ ! -e "$DROPIN" ]
}

restart_cluster() {
  systemctl start docker.service || return
  all_active $CLUSTER && [ -e "$DROPIN" ] && grep -q FLANNEL_SUBNET= /run/engine/seen
}

# in_unit_cgroup UNIT PATTERN: the container's processes (matching PATTERN) sit below
# UNIT's own cgroup, and systemd-cgls shows them under the unit.
in_unit_cgroup() {
  local unit=$1 pattern=$2 pids pid cg rc=0
  pids=$(pgrep -f "$pattern")
  [ -n "$pids" ] || { echo "no process matches $pattern"; return 1; }
  for pid in $pids; do
    cg=$(cgroup_of "$pid")
    echo "pid $pid ($pattern): $cg"
    case $cg in "/system.slice/$unit/"*) ;; *) rc=1 ;; esac
  done
  systemd-cgls --no-pager -u "$unit" | shows "$pattern" || rc=1
  return $rc
}

in_journal() {
  journalctl -b --no-pager -u "$1" | grep -m1 -- "$2"
}

boot_metrics() { cluster_metric boot_to_cluster_active $CLUSTER; }

# serving_ms T0: milliseconds from T0 ($(now)) until etcd answers on its client port.
serving_ms() {
  local t0=$1 i
  for ((i = 0; i < 3000 * SLOWDOWN; i++)); do
    curl -fsS -m 1 -o /dev/null "$ETCD/health" 2> /dev/null && break
    sleep 0.01
  done
  awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.1f", (b - a) * 1000 }'
}

median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# etcd is Type=simple (atomic's unit): systemd reports it active at exec, so both runs
# are timed from the start command to etcd answering /health.
RUNS=7
bench_berth() {
  local i t0
  : > /tmp/berth.ms
  for ((i = 0; i < RUNS; i++)); do
    systemctl stop etcd.service || return
    systemctl reset-failed etcd.service # the start rate limit (5 in 10 s) is not the subject
    t0=$(now)
    systemctl start etcd.service || return
    serving_ms "$t0" >> /tmp/berth.ms
    echo >> /tmp/berth.ms
  done
  cat /tmp/berth.ms
}

# etcd from the same deployment (config.json + rootfs), run by crun under a transient
# unit. crun is handed in for this measurement only (not in the guest image).
bench_crun() {
  local i unit t0 T=$S/tools
  [ -x "$T/crun" ] || { echo "no crun handed in"; return 1; }
  systemctl stop etcd.service || return
  : > /tmp/crun.ms
  for ((i = 0; i < RUNS; i++)); do
    unit=etcd-crun-$i
    mkdir -p /run/etcd # etcd.service's RuntimeDirectory=, gone with it
    t0=$(now)
    systemd-run --quiet --unit="$unit" -p Type=notify -p NotifyAccess=all -p KillMode=mixed \
      --setenv=LD_LIBRARY_PATH="$T/lib" \
      "$T/crun" --cgroup-manager=disabled run --bundle /var/lib/berth/containers/etcd "$unit" || {
      journalctl --no-pager -u "$unit" | tail -20
      return 1
    }
    serving_ms "$t0" >> /tmp/crun.ms
    echo >> /tmp/crun.ms
    systemctl stop "$unit.service"
  done
  cat /tmp/crun.ms
  systemctl reset-failed etcd.service
  systemctl start etcd.service
}

# A container run by crun (`install --runtime`): its unit runs `berth-run --exec-runtime`,
# which prepares the container and becomes crun (src/runtime/direct.rs), so the unit's
# main pid is crun's and no berth process stays (the clean-up after it is an ExecStopPost=
# in berth's drop-in, as the image's unit has none). systemd gets READY=1 from it; a stop
# and a kill -9 of the main pid leave no state behind, and the unit starts again.
crun_exec_unit() {
  local T=$S/tools u=/etc/systemd/system/ready-crun.service pid i
  local ctr=/run/berth/runtime/ctr/ready-crun st=/run/berth/runtime/crun/ready-crun
  [ -x "$T/crun" ] || { echo "no crun handed in"; return 1; }
  berth install $(system_flag) --name ready-crun --runtime "$T/crun" "oci-archive:$IMAGES/ready.tar:1" || return
  grep '^ExecStart=' "$u" | shows 'berth-run --runtime .*/crun --exec-runtime ready-crun$' || return
  # The image's unit has no ExecStopPost=: berth's drop-in adds the clean-up.
  grep '^ExecStopPost=' "$u.d/berth.conf" | shows 'berth-run --runtime .*/crun --cleanup ready-crun$' || return
  mkdir -p "$u.d" && printf '[Service]\nEnvironment=LD_LIBRARY_PATH=%s/lib\n' "$T" > "$u.d/crun-lib.conf"
  systemctl daemon-reload || return
  systemctl start ready-crun.service || { journalctl --no-pager -u ready-crun | tail -20; return 1; }
  pid=$(prop ready-crun.service MainPID)
  echo "active; MainPID $pid is $(cat "/proc/$pid/comm"); berth processes: $(pgrep -c -x berth-run)"
  [ "$(cat "/proc/$pid/comm")" = crun ] && [ -d "$ctr" ] || return
  pgrep -x berth-run -P "$pid" && { echo "a berth-run under crun"; return 1; }
  systemctl stop ready-crun.service || return
  [ ! -e "$ctr" ] && [ ! -e "$st" ] || { echo "left after stop:"; ls -R /run/berth/runtime; return 1; }
  systemctl start ready-crun.service || return
  kill -9 "$(prop ready-crun.service MainPID)"
  for ((i = 0; i < 300; i++)); do
    [ "$(systemctl is-active ready-crun.service)" = failed ] && break
    sleep 0.1
  done
  echo "after kill -9: $(systemctl is-active ready-crun.service)"
  [ ! -e "$ctr" ] && [ ! -e "$st" ] || { echo "left after kill -9:"; ls -R /run/berth/runtime; return 1; }
  systemctl reset-failed ready-crun.service
  systemctl start ready-crun.service && all_active ready-crun.service || return
  uninstall_now ready-crun && rm -rf "$u.d"
}

phase2() {
  check "all three units active after boot" all_active $CLUSTER
  boot_metrics
  check "activation order etcd < flannel < docker (engine) at boot" cluster_order $CLUSTER
  check "docker stand-in saw the subnet flannel wrote (subnet.env, docker options)" engine_saw_subnet
  check "etcd answers put/get; data survived the reboot" put_get
  check "etcd state dir from tmpfiles.template (\${HOST_UID}/\${HOST_GID}), bind-mounted" state_dir
  check "etcd.conf from hostfs renamed to \$CONF_DIRECTORY/\$NAME, bound read-only" etcd_conf
  check "etcd's unit as the image wrote it: Type=simple, RuntimeDirectory=etcd" etcd_unit
  check "etcd's root is read-only" read_only_root
  check "host file from /exports/hostfs (renameFiles, template): /usr/local/bin/etcdctl" host_client
  check "flannel's unit as the image wrote it: notify, NotifyAccess=all, RuntimeDirectory, Before=docker" flannel_unit
  check "systemctl show flannel: Delegate=yes KillMode=mixed from berth's drop-in, not the unit" berth_dropin flannel.service
  check "systemctl show etcd: Delegate=yes KillMode=mixed from berth's drop-in, not the unit" berth_dropin etcd.service
  check "/etc/flanneld on the host (empty hostfs dir, bound rw) holds flannel's lease" flanneld_dir
  check "/etc/sysconfig/flanneld from hostfs, read by flannel" sysconfig_file
  check "flannel's process as configured: host pid ns, CAP_NET_ADMIN, NoNewPrivs 0" flannel_process
  check "docker's drop-in docker.service.d/flannel.conf written by flannel, seen by systemd" docker_dropin
  check "etcd's processes in etcd.service's cgroup" in_unit_cgroup etcd.service /usr/bin/etcd
  check "flannel's processes in flannel.service's cgroup" in_unit_cgroup flannel.service /usr/bin/flanneld-run
  check "etcd's stdout in journalctl -u etcd" in_journal etcd.service 'ready to serve client requests'
  check "flannel's stdout in journalctl -u flannel" in_journal flannel.service 'wrote /run/flannel/subnet.env'
  check "no container daemon process anywhere" no_container_daemon
  check "berth runs only as the units' main processes" berth_only_in_units
  check "systemctl --failed is empty" no_failed_units
  check "stop flannel: ExecStopPost removes docker's drop-in, flannel inactive" stop_removes_dropin
  check "tmpfiles r line removes a stale docker drop-in" tmpfiles_r
  check "start docker.service: flannel back with its drop-in" restart_cluster
  if check "etcd start → serving through berth ($RUNS runs)" bench_berth; then
    metric etcd_start_to_serving_berth "$(median < /tmp/berth.ms)" ms
  fi
  if check "etcd start → serving through crun by hand ($RUNS runs)" bench_crun; then
    metric etcd_start_to_serving_crun "$(median < /tmp/crun.ms)" ms
    if [ -s /tmp/berth.ms ]; then
      metric etcd_serving_berth_over_crun "$(awk -v a="$(median < /tmp/berth.ms)" -v b="$(median < /tmp/crun.ms)" 'BEGIN { printf "%.2f", a / b }')" x
    fi
  fi
  check "cluster healthy after the measurements" all_active $CLUSTER
  check "--runtime crun: berth-run becomes crun (MainPID), READY=1, stop and kill -9 clean" crun_exec_unit
}

case $1 in
  1) phase1 ;;
  2) phase2 ;;
esac
finish
