#!/usr/bin/env bash
# TAP: covirt installs (meson install), its covirt.pc works with pkg-config, and a program
# built only from the installed headers and library runs.  Arguments: BUILD_DIR SOURCE_DIR
set -u
build=$1 src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "1..4"
n=0
check() {  # check DESCRIPTION COMMAND...
  local what=$1; shift
  n=$((n + 1))
  if out=$("$@" 2>&1); then echo "ok $n - $what"
  else echo "not ok $n - $what"; printf '%s\n' "$out" | sed 's/^/# /' | tail -20; fi
}
check "meson install puts the library, headers and covirt.pc in place" \
  meson install -C "$build" --no-rebuild --destdir "$tmp/root" --quiet
pc=$(find "$tmp/root" -name covirt.pc | head -n1)
libdir=$(dirname "$(dirname "$pc")")
export PKG_CONFIG_PATH=$(dirname "$pc") PKG_CONFIG_SYSROOT_DIR="$tmp/root"
check "pkg-config knows covirt" pkg-config --exists covirt
check "a program builds against the installed covirt alone" \
  g++ -O0 "$src/examples/list_domains.cpp" $(pkg-config --cflags --libs covirt) -o "$tmp/list_domains"
check "and runs on test:///default" \
  bash -c "LD_LIBRARY_PATH='$libdir' '$tmp/list_domains' | grep -q '^test (id 1, uuid 6695eb01-f6a4-8304-79aa-97f2502e193f): running, 2 vcpus, 2097152 of 8388608 KiB$'"
