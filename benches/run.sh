#!/usr/bin/env bash
# `berth run` benchmark (issue 5): 100x /bin/true in one busybox-static bundle,
# create -> start -> wait -> delete, in one hyperfine run:
#   berth run --bundle (bundled libcontainer), crun run, runc run,
#   berth --runtime crun run, and podman run --rm --rootfs when podman is installed.
# Also: berth's resident memory while a container runs, and where berth's own
# start-up time goes (dynamic linking, argument parsing). Writes
# benches/results/run.md. Needs root, hyperfine, runc/crun (rows skip when missing).
#
# crun 1.8 refuses hybrid cgroup hosts whose cgroup2 still has controllers;
# BENCH_MOUNT_HUGETLB=1 applies the test bed's fix (binds hugetlb to a v1
# hierarchy until reboot) instead of skipping the crun rows.
set -euo pipefail
cd "$(dirname "$0")/.."
BERTH=${BERTH:-$PWD/target/release/berth}
BERTH_LEAN=${BERTH_LEAN:-$PWD/target/release/berth-run}
W=${BENCH_DIR:-$PWD/target/bench-run}
RUNS=${RUNS:-100}
OUT=benches/results/run.md
mkdir -p "$W" benches/results
[ "$(id -u)" -eq 0 ] || { echo "run.sh needs root" >&2; exit 1; }
[ -x "$BERTH" ] || cargo build --release

# --- the bundle -------------------------------------------------------------
B=$W/bundle
if [ ! -x "$B/rootfs/bin/busybox" ]; then
  rm -rf "$B" "$W/deb" && mkdir -p "$B/rootfs/bin" "$W/deb"
  (cd "$W/deb" && apt-get download -q busybox-static >/dev/null)
  dpkg-deb -x "$W"/deb/busybox-static_*.deb "$W/deb/x"
  cp "$W/deb/x/bin/busybox" "$B/rootfs/bin/busybox"
  for a in sh true sleep; do ln -s busybox "$B/rootfs/bin/$a"; done
  mkdir -p "$B/rootfs/"{proc,dev,sys,tmp,run/notify,etc}
fi
python3 - "$B" <<'PY'
import json, sys
b = sys.argv[1]
json.dump({
  "ociVersion": "1.0.2",
  "process": {"terminal": False, "user": {"uid": 0, "gid": 0}, "args": ["/bin/true"],
              "env": ["PATH=/bin"], "cwd": "/", "noNewPrivileges": True,
              "capabilities": {k: ["CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_AUDIT_WRITE"]
                               for k in ("bounding", "effective", "permitted")}},
  "root": {"path": "rootfs", "readonly": True},
  "mounts": [
    {"destination": "/proc", "type": "proc", "source": "proc"},
    {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755"]},
    {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]}],
  "linux": {"namespaces": [{"type": t} for t in ("pid", "ipc", "uts", "mount", "network")],
            "maskedPaths": ["/proc/kcore", "/proc/keys", "/sys/firmware"],
            "readonlyPaths": ["/proc/sys", "/proc/sysrq-trigger"]}
}, open(f"{b}/config.json", "w"), indent=1)
PY

# --- which runtimes can run here ----------------------------------------------
have() { command -v "$1" >/dev/null 2>&1; }
crun_ok=0
if have crun; then
  if ! crun --root "$W/crun" run --bundle "$B" probe >/dev/null 2>"$W/crun.err"; then
    if grep -q "hybrid mode not supported" "$W/crun.err" && [ "${BENCH_MOUNT_HUGETLB:-0}" = 1 ]; then
      mkdir -p /sys/fs/cgroup/hugetlb
      mountpoint -q /sys/fs/cgroup/hugetlb || mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb
    fi
    crun --root "$W/crun" delete --force probe >/dev/null 2>&1 || true
  fi
  crun --root "$W/crun" run --bundle "$B" probe >/dev/null 2>"$W/crun.err" && crun_ok=1
fi
runc_ok=0
have runc && runc --root "$W/runc" run --bundle "$B" probe >/dev/null 2>&1 && runc_ok=1
"$BERTH" --root "$W/root" run --bundle "$B" probe

cmds=(-n "berth run (bundled)" "$BERTH --root $W/root run --bundle $B b1")
# berth-run: the unit's ExecStart binary, same code with only berth::runtime linked
# (see docs/runtime.md, "Start-up cost").
[ -x "${BERTH_LEAN:-}" ] && cmds+=(-n "berth-run (bundled; the units' ExecStart)" "$BERTH_LEAN --root $W/root --bundle $B l1")
[ $crun_ok = 1 ] && cmds+=(-n "crun run" "crun --root $W/crun run --bundle $B c1"
                           -n "berth --runtime crun run" "$BERTH --root $W/root --runtime crun run --bundle $B bc1")
[ $crun_ok = 1 ] && [ -x "${BERTH_LEAN:-}" ] && cmds+=(-n "berth-run --runtime crun" "$BERTH_LEAN --root $W/root --runtime crun --bundle $B lc1")
[ $runc_ok = 1 ] && cmds+=(-n "runc run" "runc --root $W/runc run --bundle $B r1")
if have podman; then
  cmds+=(-n "podman run --rm --rootfs" "podman --root $W/podman/root --runroot $W/podman/run --events-backend file --cgroup-manager cgroupfs run --rm --network=none --ulimit nofile=1024:1024 --ulimit nproc=4096:4096 --rootfs $B/rootfs /bin/true")
fi
hyperfine -N -w 5 -r "$RUNS" --export-json "$W/run.json" "${cmds[@]}"

# --- berth's own start-up -------------------------------------------------------
hyperfine -N -w 5 -r 200 --export-json "$W/startup.json" \
  -n "berth --version" "$BERTH --version" \
  -n "berth run (bad bundle: parse + checks, no container)" "$BERTH --root $W/root run --bundle $W/none x" \
  -i >/dev/null
libs=$(ldd "$BERTH" | wc -l)
size=$(stat -c %s "$BERTH")
reloc=$(LD_DEBUG=statistics "$BERTH" --version 2>&1 >/dev/null | sed -n 's/.*total startup time in dynamic loader: *\([0-9]*\) cycles.*/\1/p' | head -1)
strace -c -f -o "$W/strace.txt" "$BERTH" --root "$W/root" run --bundle "$B" st1 >/dev/null 2>&1 || true
# System calls of one start, all processes (load-independent; issue 16).
: >"$W/strace-lean.txt"; : >"$W/strace-crun.txt"
[ -x "${BERTH_LEAN:-}" ] && { strace -c -f -o "$W/strace-lean.txt" "$BERTH_LEAN" --root "$W/root" --bundle "$B" stl1 >/dev/null 2>&1 || true; }
[ $crun_ok = 1 ] && { strace -c -f -o "$W/strace-crun.txt" crun --root "$W/crun" run --bundle "$B" stc1 >/dev/null 2>&1 || true; }

# --- resident memory while a container runs -----------------------------------
mkdir -p "$W/sleep" && ln -sfn "$B/rootfs" "$W/sleep/rootfs"
python3 - "$B/config.json" "$W/sleep/config.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1])); c["process"]["args"] = ["/bin/sleep", "5"]
json.dump(c, open(sys.argv[2], "w"))
PY
"$BERTH" --root "$W/root" run --bundle "$W/sleep" rss &
P=$!
for _ in $(seq 100); do [ -n "$(cat /proc/$P/task/$P/children 2>/dev/null)" ] && break; sleep 0.05; done
sleep 0.5
rss=$(awk '/VmRSS/{print $2}' /proc/$P/status)
hwm=$(awk '/VmHWM/{print $2}' /proc/$P/status)
wait $P
lean_rss=0
lean_anon=0
lean_pss=0
if [ -x "${BERTH_LEAN:-}" ]; then
  "$BERTH_LEAN" --root "$W/root" --bundle "$W/sleep" rss-lean &
  P=$!
  for _ in $(seq 100); do [ -n "$(cat /proc/$P/task/$P/children 2>/dev/null)" ] && break; sleep 0.05; done
  # berth-run hands off to its lean supervisor after 500 ms (runtime::handoff).
  sleep 1.5
  lean_rss=$(awk '/VmRSS/{print $2}' /proc/$P/status)
  lean_anon=$(awk '/RssAnon/{print $2}' /proc/$P/status)
  lean_pss=$(awk '/^Pss:/{print $2}' /proc/$P/smaps_rollup)
  wait $P
fi

python3 - "$W" "$OUT" "$RUNS" "$libs" "$size" "${reloc:-?}" "$rss" "$hwm" "$lean_rss" "$lean_anon" "$lean_pss" "$(uptime)" <<'PY'
import json, statistics, sys
w, out, runs, libs, size, reloc, rss, hwm, lean_rss, lean_anon, lean_pss, load = sys.argv[1:]
def rows(path):
    return [(r["command"], statistics.median(r["times"]) * 1e3, r["mean"] * 1e3, r["stddev"] * 1e3, min(r["times"]) * 1e3)
            for r in json.load(open(path))["results"]]
main = rows(f"{w}/run.json")
base = {n: m for n, m, *_ in main}
crun = base.get("crun run")
L = ["## berth run", "",
     f"{runs}x `/bin/true` in one busybox-static bundle (read-only root, pid/ipc/uts/mount/net namespaces),",
     "create -> start -> wait -> delete, `hyperfine -N -w 5`, one run of `benches/run.sh`.", "",
     "| command | median ms | mean ± σ ms | min ms | vs crun |", "|---|---|---|---|---|"]
for n, med, mean, sd, mn in main:
    ratio = f"{med / crun:.2f}x" if crun else "-"
    L.append(f"| {n} | {med:.1f} | {mean:.1f} ± {sd:.1f} | {mn:.1f} | {ratio} |")
st = rows(f"{w}/startup.json")
L += ["", "berth's own start-up:", "",
      "| command | median ms |", "|---|---|"]
L += [f"| {n} | {med:.2f} |" for n, med, *_ in st]
L += ["", f"- binary {int(size) / 1e6:.1f} MB, {libs} shared libraries (`ldd`); dynamic loader {reloc} cycles (`LD_DEBUG=statistics`)",
      f"- resident memory of `berth run` while its container runs: VmRSS {int(rss) / 1024:.1f} MiB (peak {int(hwm) / 1024:.1f} MiB)"]
if int(lean_rss):
    L.append(f"- `berth-run` while its container runs: VmRSS {int(lean_rss) / 1024:.1f} MiB, of which"
             f" anonymous {int(lean_anon) / 1024:.1f} MiB (the rest is file pages of the binary and libc, shared between instances),"
             f" Pss {int(lean_pss) / 1024:.1f} MiB (after its hand-off to the lean supervisor)")
def calls(path):
    try:
        return next(int(l.split()[3]) for l in open(path) if l.rstrip().endswith(" total"))
    except (OSError, StopIteration, ValueError, IndexError):
        return None
lean_calls, crun_calls = calls(f"{w}/strace-lean.txt"), calls(f"{w}/strace-crun.txt")
if lean_calls and crun_calls:
    L.append(f"- system calls of one `/bin/true` start (`strace -f -c`): berth-run {lean_calls:,}, crun {crun_calls:,}"
             f" ({lean_calls / crun_calls:.2f}x)")
L.append(f"- machine load at the end (2 cores, shared): `{load.strip()}`")
try:
    top = [l for l in open(f"{w}/strace.txt").read().splitlines() if l.strip() and l.split()[0][0].isdigit()][:6]
    L += ["- `strace -c -f` of one `berth run`, top syscalls by time:", "", "```", *top, "```"]
except OSError:
    pass
open(out, "w").write("\n".join(L) + "\n")
print("\n".join(L))
PY
