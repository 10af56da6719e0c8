#!/usr/bin/env bash
# Checks berth's installed units with `systemd-analyze verify`.
# Usage: packaging/verify-units.sh STAGED_ROOT   (a DESTDIR `make install` filled)
# The units name /usr/bin/berth (or PREFIX/bin/berth); verify needs the
# command to exist on this host, so a copy pointing into STAGED_ROOT is checked,
# with MANPATH on the staged man pages for the Documentation= lines.
set -euo pipefail
root=$(cd "${1:?usage: $0 STAGED_ROOT}" && pwd)
command -v systemd-analyze >/dev/null || { echo "systemd-analyze not installed: units not verified"; exit 0; }
units=$(find "$root" -path '*/systemd/system/berth*' \( -name '*.service' -o -name '*.timer' \) | sort)
[ -n "$units" ] || { echo "no berth units under $root" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for u in $units; do
  sed -E "s#(Exec[A-Za-z]*=)(/usr(/local)?/bin/)#\1$root\2#" "$u" > "$tmp/${u##*/}"
done
man=$(find "$root" -type d -path '*/share/man' | head -n 1)
(cd "$tmp" && MANPATH=${man:-} systemd-analyze verify ./*)
echo "systemd-analyze verify: $(cd "$tmp" && echo *) OK"
