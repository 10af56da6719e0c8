#!/usr/bin/env bash
# Builds target/debian/berth_VERSION_ARCH.deb with dpkg-buildpackage (`make deb`).
#
# The source tree stays clean: the files git knows (tracked and untracked, not
# ignored) are copied to target/debian/build/berth-VERSION/ with
# packaging/debian/ as its debian/, and the package is built there. Cargo
# reuses the normal target/ directory (CARGO_TARGET_DIR), so the dependencies
# are not compiled a second time; only berth itself is (its path differs).
#
# Cargo and rustc come from PATH (rustup): Debian 12's rustc is older than
# berth's rust-version, so they are not Build-Depends. Needs dpkg-dev,
# debhelper and the build libraries (./scripts/deps.sh installs them).
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
changelog_version=$(dpkg-parsechangelog -l packaging/debian/changelog -S Version)
if [ "$changelog_version" != "$version" ]; then
  echo "packaging/debian/changelog is at $changelog_version, Cargo.toml at $version: add a changelog entry (dch -v $version)" >&2
  exit 1
fi
command -v cargo >/dev/null || { echo "cargo not found on PATH (install Rust with rustup)" >&2; exit 1; }

out=$top/target/debian
build=$out/build
src=$build/berth-$version
rm -rf "$build"
mkdir -p "$src"
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  git ls-files -z --cached --others --exclude-standard |
    while IFS= read -r -d '' f; do
      # Skip files deleted in the work tree but still in the index.
      [ -e "$f" ] || [ -L "$f" ] || continue
      printf '%s\0' "$f"
    done | tar --null -T - -cf - | tar -C "$src" -xf -
else
  tar --exclude=./target --exclude='./target-*' --exclude=./.git --exclude=./fuzz/target \
    -cf - . | tar -C "$src" -xf -
fi
rm -rf "$src/debian"
cp -a packaging/debian "$src/debian"

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$top/target}
export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-2}
(cd "$src" && dpkg-buildpackage -us -uc -b)

arch=$(dpkg-architecture -qDEB_HOST_ARCH)
deb=berth_${version}_${arch}.deb
mv -f "$build/$deb" "$out/$deb"
echo "built $out/$deb"
