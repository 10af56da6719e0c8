#!/usr/bin/env bash
# Start path of one container (issue 16): CPU time and system calls of
# `berth-run --bundle B ID`, `berth-run --runtime crun --bundle B ID` and
# `berth-run --runtime /usr/bin/crun --exec-runtime --bundle B ID` (what a
# crun container's unit runs; its `--cleanup`, the unit's ExecStopPost, runs
# after each start, outside the measure) against `crun run --bundle B ID`,
# /bin/true in the busybox bundle of benches/run.sh (run that once first, or
# set BUNDLE).
#
# Wall-clock times swing with the machine's load; these measures do not
# (much): `perf stat -e task-clock` summed over every process of a start,
# in blocks of REPS runs alternated between the commands BLOCKS times
# (medians of the block means), and `strace -f -c` call counts. The state
# roots are measured twice: on a tmpfs (what /run is under systemd) and on
# the disk below target/ (ext4 here, where creating the state files costs
# more). "berth-run alone" is the berth-run process without its children
# (`perf stat --no-inherit`). Writes benches/results/startpath.md.
# Needs root, perf, strace, crun.
set -euo pipefail
cd "$(dirname "$0")/.."
BR=${BERTH_LEAN:-$PWD/target/release/berth-run}
W=${BENCH_DIR:-$PWD/target/bench-run}
B=${BUNDLE:-$W/bundle}
BLOCKS=${BLOCKS:-20}
REPS=${REPS:-5}
OUT=benches/results/startpath.md
[ "$(id -u)" -eq 0 ] || { echo "startpath.sh needs root" >&2; exit 1; }
[ -f "$B/config.json" ] || { echo "no bundle at $B: run benches/run.sh first" >&2; exit 1; }
[ -x "$BR" ] || cargo build --release --bin berth-run
T=$W/tmpfs
mkdir -p "$T" "$W/disk"
mountpoint -q "$T" || mount -t tmpfs -o size=64m tmpfs "$T"
trap 'umount "$T" 2>/dev/null || true' EXIT

# median of the numbers on stdin
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

# cpu NAME...: CMD[NAME] run in interleaved blocks of REPS runs, one `perf stat`
# per run (so a command's AFTER[NAME], when set, runs between its runs, unmeasured,
# and every command is measured the same way); prints "NAME median-of-block-means-ms".
cpu() {
  local d r; d=$(mktemp -d)
  for ((i = 0; i < BLOCKS; i++)); do
    for n in "$@"; do
      for ((r = 0; r < REPS; r++)); do
        # shellcheck disable=SC2086
        # (exit status ignored: the "start" command exits 2 by design)
        perf stat ${PERF_OPTS:-} -x, -e task-clock -o "$d/p" -- ${CMD[$n]} >/dev/null 2>&1 || true
        grep task-clock "$d/p" | cut -d, -f1 >>"$d/$n.block"
        if [ -n "${AFTER[$n]:-}" ]; then ${AFTER[$n]} >/dev/null 2>&1; fi
      done
      awk '{ s += $1 } END { print s / NR }' "$d/$n.block" >>"$d/$n"
      rm -f "$d/$n.block"
    done
  done
  for n in "$@"; do echo "$n $(median <"$d/$n")"; done
  rm -rf "$d"
}

calls() { # total system calls of one run of CMD[$1], all processes
  # shellcheck disable=SC2086
  strace -f -c -o "$W/strace.txt" ${CMD[$1]} >/dev/null 2>&1
  awk '/ total$/ {print $4}' "$W/strace.txt"
}

declare -A CMD AFTER
CRUN=$(command -v crun)
{
  echo "# Start path, $(date -u +%F), $(nproc) cores, load: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo
  echo "CPU time of all processes of one /bin/true start (perf stat task-clock,"
  echo "$BLOCKS blocks of $REPS runs alternated, one perf stat per run, median of block means) and system calls (strace -f -c)."
  echo
  echo "| state root | command | CPU ms | vs crun | system calls |"
  echo "|---|---|---|---|---|"
  for fs in tmpfs disk; do
    root=$T; [ $fs = disk ] && root=$W/disk
    CMD=([crun]="crun --root $root/crun run --bundle $B c1"
         [bundled]="$BR --root $root/b --bundle $B l1"
         [external]="$BR --root $root/b --runtime crun --bundle $B lc1"
         [exec]="$BR --root $root/b --runtime $CRUN --exec-runtime --bundle $B le1")
    AFTER=([exec]="$BR --root $root/b --runtime $CRUN --cleanup le1")
    for n in crun bundled external exec; do ${CMD[$n]} >/dev/null 2>&1 || true; done # warm up
    ${AFTER[exec]}
    declare -A ms=()
    while read -r n v; do ms[$n]=$v; done < <(cpu crun bundled external exec)
    for n in crun bundled external exec; do
      label=${CMD[$n]%% --root*}; [ $n = external ] && label="berth-run --runtime crun (supervising)"
      [ $n = bundled ] && label="berth-run (bundled)"
      [ $n = exec ] && label="berth-run --runtime crun --exec-runtime (becomes crun)"
      echo "| $fs | $label | ${ms[$n]} | $(awk -v a="${ms[$n]}" -v b="${ms[crun]}" 'BEGIN{printf "%.2fx", a/b}') | $(calls $n) |"
      if [ -n "${AFTER[$n]:-}" ]; then ${AFTER[$n]}; fi
    done
    AFTER=()
  done
  echo
  CMD=([own]="$BR --root $T/b --runtime crun --bundle $B lc1"
       [ownexec]="$BR --root $T/b --runtime $CRUN --exec-runtime --bundle $B le1"
       [crunown]="crun --root $T/crun run --bundle $B c1"
       [start]="$BR --supervise-handoff")
  echo "berth-run alone (perf stat --no-inherit), tmpfs state root:"
  echo
  AFTER=([ownexec]="$BR --root $T/b --runtime $CRUN --cleanup le1")
  PERF_OPTS=--no-inherit cpu own ownexec crunown start | while read -r n v; do
    case $n in
      own) echo "- \`berth-run --runtime crun\`, its own process: $v ms CPU" ;;
      crunown) echo "- \`crun run\`, its own process (the same measure, for the line above): $v ms CPU" ;;
      ownexec) echo "- \`berth-run --exec-runtime\`, its process until it exits (berth-run, then crun's parent process after the exec): $v ms CPU" ;;
      start) echo "- its process start and exit alone (\`berth-run --supervise-handoff\` without arguments, exit 2): $v ms CPU" ;;
    esac
  done
} | tee "$OUT"
