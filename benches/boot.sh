#!/usr/bin/env bash
# Boot benchmark (issue 16): N Type=notify containers enabled in an nspawn guest,
# systemd's start → all READY, berth-run's units against crun's twins of them (the
# same unit text, drop-in and bundle) and against the same image installed with
# `--runtime crun` (berth-run --exec-runtime), in the same guest, alternating boots. For each
# N of BENCH_BOOT_N (default "1 20 100"), one warm-up boot and BENCH_BOOT_ROUNDS
# (default 3) rounds of the three. Runs tests/system.rs `bench_boot` (the system tests' harness),
# then writes benches/results/boot.md: medians, ratios, berth-run's memory at N and
# the host's load. Needs what `make check-system` needs, and root.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=benches/results/boot.md
NS=${BENCH_BOOT_N:-1 20 100}
export BENCH_BOOT_N="$NS" BENCH_BOOT_ROUNDS=${BENCH_BOOT_ROUNDS:-3}
[ "$(id -u)" -eq 0 ] || { echo "boot.sh needs root" >&2; exit 1; }
cargo test --release --test system -- --ignored --exact bench_boot --nocapture
mkdir -p benches/results
{
  echo "# Boot benchmark ($(date -u +%Y-%m-%d), $(nproc) cores, $(uname -r), rounds: $BENCH_BOOT_ROUNDS)"
  echo
  echo "systemd's userspace start → the last of N Type=notify container units active (READY=1),"
  echo "median of the rounds; span: the first container unit leaving inactive → the last active."
  echo
  echo "berth: berth-run's units (bundled runtime); berth+crun: the same image installed with"
  echo "\`--runtime crun\` (berth-run prepares the container and becomes crun); crun: crun's twins"
  echo "of berth's units. Memory: what stays beside the N containers (berth-run or crun processes)."
  echo
  echo "| N | berth (s) | berth+crun (s) | crun (s) | berth / crun | berth+crun / crun | spans berth / berth+crun / crun (s) | PSS per container: berth / berth+crun / crun (MiB) | RSS sum berth (MiB) | load at boot (median) |"
  echo "|---|---|---|---|---|---|---|---|---|---|"
  for n in $NS; do
    m=target/system-logs/scenarioboot-$n/metrics.tsv
    med() { awk -F'\t' -v k="$1" '$2 == k { print $3 }' "$m" | sort -n |
      awk '{ v[NR] = $1 } END { if (NR == 0) print "nan"; else print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
    bb=$(med boot_all_ready_berth) bx=$(med boot_all_ready_xcrun) bc=$(med boot_all_ready_crun)
    sb=$(med span_berth) sx=$(med span_xcrun) sc=$(med span_crun)
    pb=$(med berth_pss_sum) px=$(med xcrun_pss_sum) pc=$(med crun_pss_sum)
    rss=$(med berth_rss_sum) load=$(med loadavg_at_boot_berth)
    awk -v n="$n" -v bb="$bb" -v bx="$bx" -v bc="$bc" -v sb="$sb" -v sx="$sx" -v sc="$sc" \
      -v pb="$pb" -v px="$px" -v pc="$pc" -v rss="$rss" -v load="$load" 'BEGIN {
      printf "| %s | %.3f | %.3f | %.3f | %.2fx | %.2fx | %.3f / %.3f / %.3f | %.2f / %.2f / %.2f | %.1f | %s |\n",
        n, bb, bx, bc, bb / bc, bx / bc, sb, sx, sc, pb / 1024 / n, px / 1024 / n, pc / 1024 / n, rss / 1024, load }'
  done
} > "$OUT"
cat "$OUT"
