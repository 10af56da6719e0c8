#!/usr/bin/env bash
# berth's main job, end to end on this machine: build a small image from
# Debian's busybox-static, serve it from a local registry on 127.0.0.1, pull
# it with berth into a demo root, list it, inspect it and check it out.
# Everything lives under target/demo (the host's / is not touched).
set -euo pipefail
cd "$(dirname "$0")/.."
BERTH=${BERTH:-$PWD/target/release/berth}
WORK=$PWD/target/demo
PORT=${DEMO_PORT:-5000}
rm -rf "$WORK"; mkdir -p "$WORK" "$WORK/root"

echo "== building an OCI image from Debian's busybox-static"
( cd "$WORK" && apt-get download busybox-static >/dev/null 2>&1 ) \
  || { echo "apt-get download busybox-static failed (run apt-get update?)" >&2; exit 1; }
dpkg-deb -x "$WORK"/busybox-static_*.deb "$WORK/deb"
umoci init --layout "$WORK/oci" >/dev/null
umoci new --image "$WORK/oci:busybox" >/dev/null
umoci unpack --image "$WORK/oci:busybox" "$WORK/bundle" >/dev/null
R="$WORK/bundle/rootfs"
mkdir -p "$R/bin" "$R/etc" "$R/tmp" "$R/var/www"
cp "$WORK/deb/bin/busybox" "$R/bin/busybox"
for app in sh ls cat echo true false sleep httpd wget env id; do ln -sf busybox "$R/bin/$app"; done
echo "hello from a berth demo image" > "$R/var/www/index.html"
umoci repack --image "$WORK/oci:busybox" "$WORK/bundle" >/dev/null
umoci config --image "$WORK/oci:busybox" --config.cmd /bin/httpd --config.cmd -f --config.cmd -p --config.cmd 8080 \
  --config.cmd -h --config.cmd /var/www --config.label org.opencontainers.image.title=berth-demo >/dev/null
umoci gc --layout "$WORK/oci"

echo "== serving it from a local registry on 127.0.0.1:$PORT"
cat > "$WORK/registry.yml" <<CONF
version: 0.1
log: { level: error }
storage: { filesystem: { rootdirectory: $WORK/registry } }
http: { addr: 127.0.0.1:$PORT }
CONF
docker-registry serve "$WORK/registry.yml" > "$WORK/registry.log" 2>&1 &
REG=$!
trap 'kill $REG 2>/dev/null || true' EXIT
for _ in $(seq 50); do curl -fs "http://127.0.0.1:$PORT/v2/" >/dev/null && break; sleep 0.1; done
skopeo copy -q --dest-tls-verify=false "oci:$WORK/oci:busybox" "docker://127.0.0.1:$PORT/demo/busybox:latest"

echo "== berth pull"
"$BERTH" --root "$WORK/root" pull --tls-verify=false "127.0.0.1:$PORT/demo/busybox:latest"
echo "== berth pull again (nothing to do)"
"$BERTH" --root "$WORK/root" pull --tls-verify=false "127.0.0.1:$PORT/demo/busybox:latest"
echo "== berth images"
"$BERTH" --root "$WORK/root" images
echo "== berth images inspect"
"$BERTH" --root "$WORK/root" images inspect "127.0.0.1:$PORT/demo/busybox:latest"
echo "== berth images checkout"
"$BERTH" --root "$WORK/root" images checkout "127.0.0.1:$PORT/demo/busybox:latest" "$WORK/checkout"
ls -l "$WORK/checkout/bin/busybox" "$WORK/checkout/var/www/index.html"
echo "files in the checkout that are hardlinks to the store: $(find "$WORK/checkout" -type f -links +1 | wc -l) of $(find "$WORK/checkout" -type f | wc -l)"
ostree fsck --repo="$WORK/root/var/lib/berth/repo" >/dev/null && echo "ostree fsck: clean"

echo "== berth install (offline into the demo root: unit, config.json, enablement links)"
"$BERTH" --root "$WORK/root" install --name demo-httpd "127.0.0.1:$PORT/demo/busybox:latest"
"$BERTH" --root "$WORK/root" list
cat "$WORK/root/etc/systemd/system/demo-httpd.service"
echo "== running it the way its unit would (berth-run), then stopping it"
"$(dirname "$BERTH")/berth-run" --root "$WORK/root" demo-httpd &
RUN=$!
for _ in $(seq 50); do curl -fs http://127.0.0.1:8080/ >/dev/null 2>&1 && break; sleep 0.1; done
echo "GET http://127.0.0.1:8080/ -> $(curl -fs http://127.0.0.1:8080/)"
# busybox httpd as the container's PID 1 has no SIGTERM handler, so it is
# stopped with KILL here (its unit would do the same after TimeoutStopSec).
"$BERTH" --root "$WORK/root" kill demo-httpd KILL
wait $RUN || echo "berth-run exited with status $? (128+9: the container was killed)"
echo "== berth uninstall"
"$BERTH" --root "$WORK/root" uninstall demo-httpd

if [ -d /run/systemd/system ]; then
  echo "== systemd runs here: berth install --now as a real system container"
  "$BERTH" install --now --name demo-httpd "127.0.0.1:$PORT/demo/busybox:latest"
  for _ in $(seq 50); do curl -fs http://127.0.0.1:8080/ >/dev/null 2>&1 && break; sleep 0.1; done
  echo "GET http://127.0.0.1:8080/ -> $(curl -fs http://127.0.0.1:8080/)"
  systemctl status --no-pager demo-httpd.service | head -n 12
  "$BERTH" status demo-httpd
  "$BERTH" uninstall demo-httpd
else
  echo "== (PID 1 is not systemd here: the live install is shown by the system tests, tests/system/)"
fi
echo "== demo done (state in $WORK)"
