# Sourced by every scenario script in the guest (bash). Checks append one line each to
# /mnt/host/results.tsv (scenario, check, status, seconds, detail) and metrics to
# /mnt/host/metrics.tsv (scenario, name, value, unit); tests/system/harness.rs turns them
# into the result table.
#
# Status: pass | fail | missing (berth does not offer the verb or flag the check needs
# yet; probed from its --help, so the check runs for real once the feature lands) |
# skip (this guest cannot show it, e.g. no cgroup controllers under nspawn).
set -u
S=/mnt/host
IMAGES=/mnt/images
RESULTS=$S/results.tsv
METRICS=$S/metrics.tsv
: "${SCENARIO:?}"
FAILED=0
# How much slower than nspawn this guest is: 1, or what the host wrote (the qemu TCG
# guest: tests/system/vm.rs). Wall-clock limits of checks are multiplied by it.
SLOWDOWN=$(cat "$S/slowdown" 2> /dev/null || echo 1)
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }

# record STATUS CHECK SECONDS DETAIL
record() {
  local detail
  detail=$(printf '%s' "$4" | tr '\t\n' '  ' | cut -c1-300)
  printf '%s\t%s\t%s\t%s\t%s\n' "$SCENARIO" "$2" "$1" "$3" "$detail" >> "$RESULTS"
  echo "### $1: $2 (${3}s) $detail"
  [ "$1" != fail ] || FAILED=1
}

# metric NAME VALUE UNIT
metric() {
  printf '%s\t%s\t%s\t%s\n' "$SCENARIO" "$1" "$2" "$3" >> "$METRICS"
  echo "### metric $1 = $2 $3"
}

# check NAME CMD...: runs CMD in this shell; pass when it exits 0. The last lines of its
# output are the detail of a failure.
check() {
  local name=$1 t0 rc out
  shift
  out=$(mktemp)
  echo "### check: $name"
  t0=$(now)
  "$@" > "$out" 2>&1
  rc=$?
  sed 's/^/    /' "$out"
  if [ $rc = 0 ]; then
    record pass "$name" "$(since "$t0")" ""
  else
    record fail "$name" "$(since "$t0")" "rc=$rc: $(tail -n 4 "$out")"
  fi
  rm -f "$out"
  return $rc
}

# skip NAME REASON
skip() { record skip "$1" 0 "$2"; }

# have VERB [FLAG]: berth offers VERB (and FLAG in `berth VERB --help`).
have() {
  local help
  help=$(berth "$1" --help 2>&1) || return 1
  [ $# -lt 2 ] || grep -q -- "$2" <<< "$help"
}

# check_with "VERB [FLAG]" NAME CMD...: `check` when berth has the feature, else
# `missing`.
check_with() {
  local feature=$1
  shift
  # shellcheck disable=SC2086
  if ! have $feature; then
    record missing "$1" 0 "berth has no '$feature' yet"
    return 1
  fi
  check "$@"
}

# `berth install --system` once berth has the flag (the default otherwise).
system_flag() { have install --system && echo --system; }

# berth talks to systemd itself once it has `install --now` (the D-Bus manager);
# until then these do by hand what it will do. The one place to change when it lands.
berth_manages_systemd() { have install --now; }

# install_now NAME IMAGE [ARGS...]: `berth install --now` (or the same by hand).
install_now() {
  local name=$1 image=$2
  shift 2
  if berth_manages_systemd; then
    berth install $(system_flag) --now --name "$name" "$@" "$image"
    return
  fi
  berth install $(system_flag) --name "$name" "$@" "$image" || return
  systemctl daemon-reload || return
  if [ -f "/etc/tmpfiles.d/$name.conf" ]; then
    systemd-tmpfiles --create "/etc/tmpfiles.d/$name.conf" || return
  fi
  systemctl start "$name.service"
}

# install_only NAME IMAGE [ARGS...]: `berth install` (files, enablement, reload, tmpfiles).
install_only() {
  local name=$1 image=$2
  shift 2
  berth install $(system_flag) --name "$name" "$@" "$image" || return
  berth_manages_systemd && return
  systemctl daemon-reload || return
  if [ -f "/etc/tmpfiles.d/$name.conf" ]; then
    systemd-tmpfiles --create "/etc/tmpfiles.d/$name.conf" || return
  fi
}

# uninstall_now NAME: `berth uninstall` (stop, disable, remove), by hand around it
# while berth cannot tell systemd.
uninstall_now() {
  if berth_manages_systemd; then
    berth uninstall "$1"
    return
  fi
  systemctl stop "$1.service" "$1.socket" 2> /dev/null
  berth uninstall "$1" || return
  systemctl daemon-reload
}

# shows PATTERN: prints stdin and succeeds when it matches PATTERN (a check's stdout and
# stderr are one file: `tee /dev/stderr` would reopen and truncate it).
shows() {
  local in
  in=$(cat)
  printf '%s\n' "$in"
  grep -q -- "$1" <<< "$in"
}

# prop UNIT PROPERTY
prop() { systemctl show -p "$2" --value "$1"; }


# all_active UNIT...: each is active (their states printed).
all_active() {
  local u rc=0
  for u in "$@"; do
    echo "$u: $(systemctl is-active "$u")"
    [ "$(systemctl is-active "$u")" = active ] || rc=1
  done
  return $rc
}

# cluster_metric NAME [UNIT...]: seconds from systemd's userspace start to the last of
# the UNITs (default etcd, flannel, engine) active, as metric NAME.
cluster_metric() {
  local name=$1 t0 last=0 u t
  shift
  [ $# -gt 0 ] || set -- etcd.service flannel.service engine.service
  t0=$(systemctl show -p UserspaceTimestampMonotonic --value)
  for u in "$@"; do
    t=$(prop "$u" ActiveEnterTimestampMonotonic)
    [ "$t" -gt "$last" ] && last=$t
  done
  metric "$name" "$(awk -v a="$t0" -v b="$last" 'BEGIN { printf "%.3f", (b - a) / 1e6 }')" s
}

# cluster_order [UNIT...]: the UNITs (default etcd < flannel < engine) became active in
# that order, by ActiveEnterTimestampMonotonic.
cluster_order() {
  local u t prev=0 rc=0
  [ $# -gt 0 ] || set -- etcd.service flannel.service engine.service
  for u in "$@"; do
    t=$(prop "$u" ActiveEnterTimestampMonotonic)
    echo "ActiveEnterTimestampMonotonic $u=$t"
    [ "$t" -gt "$prev" ] || rc=1
    prev=$t
  done
  return $rc
}

# wait_active UNIT [SECONDS]
wait_active() {
  local i
  for ((i = 0; i < ${2:-30} * 10; i++)); do
    [ "$(systemctl is-active "$1")" = active ] && return 0
    sleep 0.1
  done
  systemctl status --no-pager "$1" | head -20
  return 1
}

# etcd's v3 JSON gateway on the guest's loopback.
ETCD=http://127.0.0.1:2379
b64() { printf %s "$1" | base64 -w0; }
etcd_put() {
  curl -fsS -m 5 -X POST -d "{\"key\":\"$(b64 "$1")\",\"value\":\"$(b64 "$2")\"}" "$ETCD/v3/kv/put"
}
etcd_get() {
  curl -fsS -m 5 -X POST -d "{\"key\":\"$(b64 "$1")\"}" "$ETCD/v3/kv/range" |
    sed -n 's/.*"value":"\([^"]*\)".*/\1/p' | base64 -d
}

# The cgroup (v2 path) of PID.
cgroup_of() { sed -n 's/^0:://p' "/proc/$1/cgroup"; }

# No container daemon or other runtime anywhere in the guest.
no_container_daemon() {
  local found
  found=$(ps -eo pid=,comm= | awk '$2 ~ /^(dockerd|containerd|containerd-shim.*|podman|conmon|crun|runc|buildah)$/')
  [ -z "$found" ] || { echo "found: $found"; return 1; }
  for t in docker podman containerd crun runc; do
    ! command -v "$t" || { echo "$t is installed"; return 1; }
  done
}

# Every berth process is the main process of a unit (berth-run), none outside one.
berth_only_in_units() {
  local pid cg ok=0
  for pid in $(pgrep -x 'berth|berth-run|berth-core'); do
    cg=$(cgroup_of "$pid")
    echo "pid $pid $(tr '\0' ' ' < "/proc/$pid/cmdline") cgroup $cg"
    # .../supervisor: berth leaves the unit's cgroup root on cgroup v2 with controllers.
    case $cg in /system.slice/*.service | /system.slice/*.service/supervisor) ;; *) ok=1 ;; esac
  done
  return $ok
}

no_failed_units() {
  local failed
  failed=$(systemctl --failed --plain --no-legend)
  [ -z "$failed" ] || { echo "$failed"; return 1; }
}

finish() {
  echo "### scenario $SCENARIO phase done, failed=$FAILED"
  exit $FAILED
}
