#!/usr/bin/env bash
# Installs what building, the demo and the tests need on Debian 12 (as root).
# Idempotent; run by `make demo`, `make check` and .ci/run; `--vm` adds qemu
# (`make check-vm`).
set -euo pipefail
PKGS=(
  build-essential pkg-config libostree-dev libseccomp-dev   # build
  libgpgme-dev gnupg                                        # GPG signatures: build, tests' keys
  ostree                                                    # fsck + benchmark peer
  docker-registry skopeo umoci apache2-utils openssl        # registry tests and the demo
  busybox-static zstd ca-certificates curl hyperfine        # images, tools, benchmarks
  strace                                                    # tests: what berth opens
  crun runc                                                 # runtime peers (tests, benchmarks)
  debootstrap systemd-container                             # system tests: guest rootfs, nspawn
  debhelper dpkg-dev rpm lintian                            # packages: make deb, check-packaging
)
# `make check-vm` (opt-in) also boots the guests under qemu.
[ "${1:-}" != --vm ] || PKGS+=(qemu-system-x86)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing packages: ${missing[*]}; run as root (or: sudo apt-get install ${missing[*]})" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
command -v cargo >/dev/null || { echo "cargo not found: install Rust (rustup) first" >&2; exit 1; }
