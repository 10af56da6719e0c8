#!/usr/bin/env bash
# Install benchmark (issue 6): the ~7,000-file image of benches/pull.sh,
# installed offline into a temporary root (checkout + render + enable), then
# update (a new deployment in the other slot), rollback, uninstall and list,
# a no-op `berth apply` of a 10-entry manifest,
# with `ostree checkout -H` of the same commit timed in the same run as the
# floor. Writes benches/results/install.md. Needs root (bare repo), hyperfine,
# and the image layout benches/pull.sh builds (target/bench-pull/oci).
set -euo pipefail
cd "$(dirname "$0")/.."
unset SSL_CERT_DIR SSL_CERT_FILE
BERTH=${BERTH:-$PWD/target/release/berth}
W=${BENCH_DIR:-$PWD/target/bench-install}
LAYOUT=${BENCH_LAYOUT:-$PWD/target/bench-pull/oci}
RUNS=${RUNS:-15}
OUT=benches/results/install.md
if [ ! -f "$LAYOUT/index.json" ]; then
  echo "no benchmark image at $LAYOUT: run benches/pull.sh first (make bench does)" >&2
  exit 1
fi
rm -rf "$W" && mkdir -p "$W"
R="$W/root"
B="$BERTH --root $R -q"
$B pull "oci:$LAYOUT:bench" >/dev/null
commit=$($B images inspect "oci:$LAYOUT:bench" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["commit"])')
files=$(ostree --repo="$R/var/lib/berth/repo" ls -R "$commit" | grep -c '^-' || true)

hyperfine -N -w 2 -r "$RUNS" --export-json "$W/install.json" \
  --prepare "rm -rf $W/floor" \
  -n "ostree checkout -H (floor)" "ostree --repo=$R/var/lib/berth/repo checkout -H $commit $W/floor" \
  --prepare "sh -c '$B uninstall bench >/dev/null 2>&1 || true'" \
  -n "berth install (offline)" "$B install --name bench oci:$LAYOUT:bench"
$B install --name bench "oci:$LAYOUT:bench" >/dev/null 2>&1 || true
hyperfine -N -w 2 -r "$RUNS" --export-json "$W/cycle.json" \
  -n "berth update (same image: new deployment, checkout reused)" "$B update bench --image oci:$LAYOUT:bench" \
  -n "berth rollback" "$B rollback bench" \
  -n "berth list" "$B list" \
  -n "berth --version (process start floor)" "$B --version"
hyperfine -N -w 1 -r "$RUNS" --export-json "$W/uninstall.json" \
  --prepare "sh -c '$B install --name bench oci:$LAYOUT:bench >/dev/null 2>&1 || true'" \
  -n "berth uninstall" "$B uninstall bench"

# Issue 8: applying an unchanged 10-entry manifest (the same image under ten names)
# must touch no file and take <= 100 ms.
M="$W/manifest.d"
mkdir -p "$M"
for i in 0 1 2 3 4 5 6 7 8 9; do
  printf '[[container]]\nname = "bench%s"\nimage = "oci:%s:bench"\nstart = false\n\n' "$i" "$LAYOUT"
done > "$M/10-bench.toml"
$B apply "$M" >/dev/null
hyperfine -N -w 2 -r "$RUNS" --export-json "$W/apply.json" \
  -n "berth apply (10 entries, unchanged)" "$B apply $M"

python3 - "$W" "$OUT" "$files" <<'PY'
import json, sys, datetime
w, out, files = sys.argv[1], sys.argv[2], int(sys.argv[3])
res = {}
for f in ("install", "cycle", "uninstall", "apply"):
    for r in json.load(open(f"{w}/{f}.json"))["results"]:
        res[r["command"]] = r
floor = res["ostree checkout -H (floor)"]["median"]
targets = {"berth install (offline)": 0.150, "berth update (same image: new deployment, checkout reused)": 0.150, "berth list": 0.010,
           "berth apply (10 entries, unchanged)": 0.100}
rows = []
for name, r in res.items():
    med = r["median"]
    t = targets.get(name)
    verdict = "" if t is None else (" ✓" if med <= t else " ✗") + f" (target ≤ {t*1000:.0f} ms)"
    rows.append(f"| {name} | {med*1000:.1f} ms | {r['mean']*1000:.1f} ± {r['stddev']*1000:.1f} ms | {med/floor:.2f}× the floor{verdict} |")
day = datetime.date.today().isoformat()
text = f"""### Install, update, rollback, uninstall, list ({day}, offline into a temp root, {files:,} files)

| what | median | mean ± σ | ratio |
|---|---|---|---|
""" + "\n".join(rows) + "\n"
open(out, "w").write(text)
print(text)
PY
