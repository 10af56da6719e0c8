#!/usr/bin/env bash
# Boot benchmark (issue 16): N Type=notify containers enabled in an nspawn guest,
# systemd's start → all READY, berth-run's units against crun's twins of them (the
# same unit text, drop-in and bundle), in the same guest, alternating boots. For each
# N of BENCH_BOOT_N (default "1 20 100"), one warm-up boot and BENCH_BOOT_ROUNDS
# (default 3) pairs. Runs tests/system.rs `bench_boot` (the system tests' harness),
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
  echo "| N | berth: boot → all READY (s) | crun (s) | berth / crun | berth span (s) | crun span (s) | span ratio | berth-run RSS, sum (MiB) | PSS, sum (MiB) | PSS per container (MiB) | load at boot (median) |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|"
  for n in $NS; do
    m=target/system-logs/scenarioboot-$n/metrics.tsv
    med() { awk -F'\t' -v k="$1" '$2 == k { print $3 }' "$m" | sort -n |
      awk '{ v[NR] = $1 } END { if (NR == 0) print "nan"; else print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
    bb=$(med boot_all_ready_berth) bc=$(med boot_all_ready_crun)
    sb=$(med span_berth) sc=$(med span_crun)
    rss=$(med berth_run_rss_sum) pss=$(med berth_run_pss_sum) load=$(med loadavg_at_boot_berth)
    awk -v n="$n" -v bb="$bb" -v bc="$bc" -v sb="$sb" -v sc="$sc" -v rss="$rss" -v pss="$pss" -v load="$load" 'BEGIN {
      printf "| %s | %.3f | %.3f | %.2fx | %.3f | %.3f | %.2fx | %.1f | %.1f | %.2f | %s |\n",
        n, bb, bc, bb / bc, sb, sc, (sc > 0 ? sb / sc : 0), rss / 1024, pss / 1024, pss / 1024 / n, load }'
  done
} > "$OUT"
cat "$OUT"
