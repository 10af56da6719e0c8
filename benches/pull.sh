#!/usr/bin/env bash
# Pull benchmark (issue 4): a ~190 MB, 4-layer image with ~9,000 files built
# from Debian packages, served from a local docker-registry on 127.0.0.1.
# In one run: `berth pull` into an empty store vs the CLI chain doing the same
# work (skopeo copy to an OCI dir, then `ostree commit --tree=tar=` per layer
# and a merged commit), the re-pull of an unchanged image, and `berth images`.
# Writes benches/results/pull.md. Needs root (bare repo), hyperfine, umoci.
set -euo pipefail
cd "$(dirname "$0")/.."
# Measure as on a stock Debian host: no trust-store overrides from the
# environment (a SSL_CERT_DIR makes TLS stacks scan every file in it).
unset SSL_CERT_DIR SSL_CERT_FILE
BERTH=${BERTH:-$PWD/target/release/berth}
W=${BENCH_DIR:-$PWD/target/bench-pull}
PORT=${BENCH_PORT:-5100}
RUNS=${RUNS:-5}
OUT=benches/results/pull.md
mkdir -p "$W/debs"

layer_pkgs=(
  "busybox-static libc6"
  "libpython3.11-stdlib libpython3.11-minimal python3.11-minimal"
  "perl-modules-5.36 libperl5.36 tzdata manpages manpages-dev"
  "python3.11-doc libpython3.11-testsuite git-man"
)

if [ ! -f "$W/oci/index.json" ]; then
  echo "== building the benchmark image from Debian packages"
  rm -rf "$W/oci" "$W/bundle"
  umoci init --layout "$W/oci" >/dev/null
  umoci new --image "$W/oci:bench" >/dev/null
  umoci unpack --image "$W/oci:bench" "$W/bundle" >/dev/null
  for pkgs in "${layer_pkgs[@]}"; do
    for p in $pkgs; do
      ls "$W/debs/${p}_"*.deb >/dev/null 2>&1 || (cd "$W/debs" && apt-get download "$p" >/dev/null 2>&1)
      dpkg-deb -x "$W/debs/${p}_"*.deb "$W/bundle/rootfs"
    done
    umoci repack --refresh-bundle --image "$W/oci:bench" "$W/bundle" >/dev/null
  done
  umoci config --image "$W/oci:bench" --config.cmd /bin/busybox >/dev/null
  umoci gc --layout "$W/oci"
fi
files=$(find "$W/bundle/rootfs" -type f | wc -l)
bytes=$(du -sb "$W/bundle/rootfs" | cut -f1)

cat > "$W/registry.yml" <<CONF
version: 0.1
log: { level: error }
storage: { filesystem: { rootdirectory: $W/registry } }
http: { addr: 127.0.0.1:$PORT }
CONF
docker-registry serve "$W/registry.yml" >"$W/registry.log" 2>&1 &
REG=$!
trap 'kill $REG 2>/dev/null || true' EXIT
for _ in $(seq 50); do curl -fs "http://127.0.0.1:$PORT/v2/" >/dev/null && break; sleep 0.1; done
IMG=127.0.0.1:$PORT/bench/big:latest
skopeo copy -q --dest-tls-verify=false "oci:$W/oci:bench" "docker://$IMG"
layers=$(skopeo inspect --tls-verify=false "docker://$IMG" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["Layers"]))')

chain="$W/chain.sh"
cat > "$chain" <<SH
#!/bin/bash
set -euo pipefail
skopeo copy -q --src-tls-verify=false docker://$IMG oci:$W/chain-oci:bench
ostree --repo=$W/chain-repo init --mode=bare
refs=()
i=0
for blob in \$(python3 -c 'import json,sys; m=json.load(open(sys.argv[1]+"/blobs/sha256/"+json.load(open(sys.argv[1]+"/index.json"))["manifests"][0]["digest"][7:])); print(" ".join(l["digest"][7:] for l in m["layers"]))' $W/chain-oci); do
  ostree --repo=$W/chain-repo commit --branch=layer/\$i --tree=tar=$W/chain-oci/blobs/sha256/\$blob --tar-autocreate-parents --no-bindings >/dev/null
  refs+=(--tree=ref=layer/\$i); i=\$((i+1))
done
ostree --repo=$W/chain-repo commit --branch=image --no-bindings "\${refs[@]}" >/dev/null
SH
chmod +x "$chain"

echo "== first pull: berth vs skopeo + ostree CLI ($RUNS runs each)"
hyperfine -N -w 1 -r "$RUNS" --export-json "$W/first.json" \
  --prepare "rm -rf $W/root $W/chain-oci $W/chain-repo" \
  -n berth "$BERTH --root $W/root pull --tls-verify=false $IMG" \
  -n chain "$chain"
rm -rf "$W/root"; "$BERTH" --root "$W/root" pull -q --tls-verify=false "$IMG" >/dev/null
echo "== re-pull of the unchanged image, berth images"
hyperfine -N -w 3 -r 30 --export-json "$W/again.json" \
  -n "berth re-pull" "$BERTH --root $W/root pull --tls-verify=false $IMG" \
  -n "berth images" "$BERTH --root $W/root images" \
  -n "skopeo inspect (peer: one manifest round trip)" "skopeo inspect --raw --tls-verify=false docker://$IMG" \
  -n "ostree refs (peer: list the same store)" "ostree --repo=$W/root/var/lib/berth/repo refs" \
  -n "berth --version (process start floor)" "$BERTH --version"
rm -rf "$W/root"
rss=$( { /usr/bin/time -f '%M' "$BERTH" --root "$W/root" pull -q --tls-verify=false "$IMG" >/dev/null; } 2>&1 | tail -1)
rm -rf "$W/chain-oci" "$W/chain-repo"
rss_skopeo=$( { /usr/bin/time -f '%M' skopeo copy -q --src-tls-verify=false "docker://$IMG" "oci:$W/chain-oci:bench" >/dev/null; } 2>&1 | tail -1)

python3 - "$W" "$OUT" "$files" "$bytes" "$layers" "$rss" "$rss_skopeo" <<'PY'
import json, sys, datetime
w, out, files, size, layers, rss, rss_skopeo = sys.argv[1:]
first = {r["command"]: r for r in json.load(open(w + "/first.json"))["results"]}
again = {r["command"]: r for r in json.load(open(w + "/again.json"))["results"]}
ms = lambda r: r["median"] * 1000
b, c = first["berth"], first["chain"]
lines = [
  f"### Pull ({datetime.date.today()}, {layers} layers, {int(files):,} files, {int(size)/1e6:.0f} MB unpacked, local registry on 127.0.0.1)",
  "",
  "| what | median | mean ± σ | ratio |",
  "|---|---|---|---|",
  f"| `berth pull` into an empty store | {ms(b):.0f} ms | {b['mean']*1000:.0f} ± {b['stddev']*1000:.0f} ms | **{b['median']/c['median']:.2f}×** the chain (target ≤ 0.8×) |",
  f"| skopeo copy → oci: + `ostree commit --tree=tar=` per layer + merged commit | {ms(c):.0f} ms | {c['mean']*1000:.0f} ± {c['stddev']*1000:.0f} ms | 1.00× |",
]
for name, r in again.items():
  lines.append(f"| {name} | {ms(r):.1f} ms | {r['mean']*1000:.1f} ± {r['stddev']*1000:.1f} ms | |")
lines += ["", f"Peak RSS: `berth pull` {int(rss)/1024:.1f} MiB; `skopeo copy` alone {int(rss_skopeo)/1024:.1f} MiB.", ""]
open(out, "w").write("\n".join(lines))
print("\n".join(lines))
PY
