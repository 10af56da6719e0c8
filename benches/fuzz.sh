#!/usr/bin/env bash
# Fuzzing bench job (issue 15): builds the cargo-fuzz targets in fuzz/ and runs
# each one, one process at a time, under `nice -n 10`, for a CPU-time budget
# (default 600 s of user+system time per target). libFuzzer's
# -max_total_time counts wall time, so on a busy machine a target is run again
# (resuming from its corpus) until its CPU time reaches the budget.
# Writes executions, coverage, features and crashes per target to
# benches/results/fuzz.md. Not part of `make check` or CI.
#
#   benches/fuzz.sh [TARGET...]          # default: every target in fuzz/Cargo.toml
#   FUZZ_SECONDS=60 benches/fuzz.sh escape
#
# Environment: FUZZ_SECONDS (CPU budget per target, default 600),
# FUZZ_SANITIZER (cargo fuzz -s, default none: berth denies unsafe code),
# FUZZ_MAX_LEN (default 4096), FUZZ_RSS_MB (default 1024), FUZZ_TIMEOUT
# (seconds per input, default 10), FUZZ_MAX_WALL (wall seconds after which a
# target stops even short of its CPU budget, default 4 x FUZZ_SECONDS),
# FUZZ_OUT (default benches/results/fuzz.md).
# Needs a nightly toolchain and `cargo install cargo-fuzz`.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SECONDS_PER=${FUZZ_SECONDS:-600}
SAN=${FUZZ_SANITIZER:-none}
MAX_LEN=${FUZZ_MAX_LEN:-4096}
RSS=${FUZZ_RSS_MB:-1024}
TIMEOUT=${FUZZ_TIMEOUT:-10}
MAX_WALL=${FUZZ_MAX_WALL:-$((4 * SECONDS_PER))}
OUT=${FUZZ_OUT:-benches/results/fuzz.md}
LOGS=fuzz/logs
mkdir -p "$LOGS" "$(dirname "$OUT")"

command -v cargo-fuzz >/dev/null || { echo "fuzz.sh: needs cargo-fuzz (cargo install cargo-fuzz)" >&2; exit 1; }
if [ $# -gt 0 ]; then
  TARGETS=("$@")
else
  mapfile -t TARGETS < <(sed -n 's/^name = "\(.*\)"/\1/p' fuzz/Cargo.toml | grep -v '^berth-fuzz$')
fi

# --- seeds: the project's own templates, manifests and tars, made at run time --
seed() { # TARGET NAME < content
  mkdir -p "fuzz/corpus/$1" && cat >"fuzz/corpus/$1/seed-$2"
}
seeds() {
  local t=$1 f i=0
  case $t in
    dollar)
      for f in templates/* tests/system/config-skeleton.json; do seed dollar "$(basename "$f")" <"$f"; done ;;
    unit_install)
      for f in templates/*; do
        { echo "seed@.service"; cat "$f"; } | seed unit_install "$(basename "$f")"
      done ;;
    escape)
      # Input: kind byte (0 unit, 1 tmpfiles, 2 json, 3 plain), value length,
      # the value, then the template text, in which every `$` is a placeholder.
      for f in templates/*; do
        { printf '\000\006x y%%n\\'; sed 's/\$[{]*[A-Z_]*[}]*/$/g' "$f"; } | seed escape "unit-$(basename "$f")"
      done
      { printf '\001\007a "b%%h\\'; printf 'd /x/$ 0700 - - -\nL /l - - - - /t/$\n'; } | seed escape tmpfiles
      { printf '\002\005a"b\\c'; sed 's/\$[{]*[A-Z_]*[}]*/$/g' tests/system/config-skeleton.json; } | seed escape json
      { printf '\003\001x'; printf '$ $ctl\n'; } | seed escape plain ;;
    manifest)
      # Every ```toml block of docs/manifest.md.
      awk -v dir="fuzz/corpus/manifest" '
        /^```toml/ { n++; f = sprintf("%s/seed-doc-%02d.toml", dir, n); on = 1; next }
        /^```/ { on = 0; next }
        on { print > f }' docs/manifest.md ;;
    tar_filter)
      local d
      d=$(mktemp -d)
      mkdir -p "$d/root/etc/sub" "$d/root/usr/bin"
      cp templates/* "$d/root/etc/"
      ln -s ../etc/service.template "$d/root/usr/bin/link"
      ln "$d/root/etc/service.template" "$d/root/etc/hard"
      : >"$d/root/etc/.wh.gone"
      : >"$d/root/etc/sub/.wh..wh..opq"
      # Input: a mode byte (bit 0: the target fixes header checksums), then the tar.
      for fmt in gnu ustar pax v7; do
        { printf '\001'; tar -C "$d/root" --format=$fmt -cf - .; } | seed tar_filter "$fmt.tar"
      done
      { printf '\001'; tar -C "$d/root" --format=pax --absolute-names -cf - ./etc/../etc/hard; } |
        seed tar_filter dotdot.tar
      rm -rf "$d" ;;
  esac
}

# --- build -----------------------------------------------------------------
# Built once up front and run directly, so that editing the sources while a
# long run goes on does not rebuild under it.
for t in "${TARGETS[@]}"; do (cd fuzz && nice -n 10 cargo +nightly fuzz build -s "$SAN" "$t"); done
BIN=fuzz/target/$(rustc +nightly -vV | sed -n 's/^host: //p')/release

TOOLCHAIN=$(rustc +nightly --version)
DATE=$(date -u +%Y-%m-%d)
# Rows of targets not run this time stay as they were.
kept=$( [ -f "$OUT" ] && grep '^| `' "$OUT" | grep -v -F -f <(printf '| `%s` |\n' "${TARGETS[@]}") || true)
{
  echo "# Fuzzing (issue 15)"
  echo
  echo "$TOOLCHAIN, cargo-fuzz $(cargo fuzz --version | awk '{print $2}'), sanitizer: $SAN,"
  echo "\`-max_len=$MAX_LEN -rss_limit_mb=$RSS -timeout=$TIMEOUT\`, \`nice -n 10\`, one target at a time,"
  echo "$(nproc) cores shared with other jobs. CPU = user + system time of the fuzzer; a target"
  echo "stops at $SECONDS_PER CPU s or $MAX_WALL wall s, whichever comes first."
  echo
  echo "| target | CPU s | wall s | executions | exec/s (CPU) | coverage (cov) | features (ft) | corpus | crashes | date |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
  [ -z "$kept" ] || echo "$kept"
} >"$OUT.new"
mv "$OUT.new" "$OUT"

# --- run -------------------------------------------------------------------
cpu_of() { # LOG of `time -p`: user + sys
  awk '/^user /{u=$2} /^sys /{s=$2} END{printf "%.0f", u+s}' "$1"
}
for t in "${TARGETS[@]}"; do
  mkdir -p "fuzz/artifacts/$t" "fuzz/corpus/$t"
  seeds "$t"
  before=$(find "fuzz/artifacts/$t" -type f | wc -l)
  cpu=0 wall=0 execs=0 round=0 status=ok
  : >"$LOGS/$t.log"
  while [ "$cpu" -lt "$SECONDS_PER" ]; do
    round=$((round + 1))
    left=$((SECONDS_PER - cpu))
    [ "$left" -gt $((MAX_WALL - wall)) ] && left=$((MAX_WALL - wall))
    [ "$left" -lt 10 ] && break
    start=$(date +%s)
    set +e
    { time -p nice -n 10 "$BIN/$t" -artifact_prefix="fuzz/artifacts/$t/" \
        -max_total_time="$left" -max_len="$MAX_LEN" -rss_limit_mb="$RSS" -timeout="$TIMEOUT" \
        -print_final_stats=1 "fuzz/corpus/$t" ; } >"$LOGS/$t.round" 2>&1
    rc=$?
    set -e
    cat "$LOGS/$t.round" >>"$LOGS/$t.log"
    wall=$((wall + $(date +%s) - start))
    cpu=$((cpu + $(cpu_of "$LOGS/$t.round")))
    n=$(sed -n 's/^stat::number_of_executed_units: *//p' "$LOGS/$t.round" | tail -n 1)
    execs=$((execs + ${n:-0}))
    if [ "$rc" -ne 0 ]; then status="exit $rc"; break; fi
  done
  last=$(grep -E '^#[0-9]+' "$LOGS/$t.log" | tail -n 1)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  corp=$(sed -n 's/.* corp: \([0-9]*\).*/\1/p' <<<"$last")
  crashes=$(($(find "fuzz/artifacts/$t" -type f | wc -l) - before))
  [ "$status" = ok ] || crashes="$crashes ($status, see $LOGS/$t.log)"
  rate=$([ "$cpu" -gt 0 ] && echo $((execs / cpu)) || echo -)
  echo "| \`$t\` | $cpu | $wall | $execs | $rate | ${cov:--} | ${ft:--} | ${corp:--} | $crashes | $DATE |" >>"$OUT"
  rm -f "$LOGS/$t.round"
  echo "fuzz.sh: $t: $cpu s CPU, $execs executions, crashes: $crashes" >&2
done
echo "fuzz.sh: wrote $OUT" >&2
