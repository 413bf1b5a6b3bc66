#!/bin/bash
# A distribution's user of libvss: installs the build into a private
# directory (meson install --destdir; or takes a tree a package was
# unpacked into, with ROOT), then, against that tree alone:
#   - every installed header compiles on its own as C11 and as C++11, includes
#     nothing but <vss/...> and the C library, and never jansson;
#   - examples/requester_demo.c builds out of tree with the flags of the
#     installed vss.pc, links libvss.so.0 and starts with every symbol
#     bound (LD_BIND_NOW), printing its usage;
#   - examples/backup_demo.c builds likewise and, with the installed
#     libvss alone, backs up a small tree (full, then incremental) into a
#     repository and restores it: the restored tree is the tree (diff -r).
#
# installed.sh SOURCE_DIR BUILD_DIR        (meson test, suite dist)
# installed.sh SOURCE_DIR --root ROOT      (scripts/deb.sh: a dpkg -x tree)
set -euo pipefail

src=$1
tmp=$(mktemp -d /tmp/vss-installed.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
if [ "$2" = --root ]; then
  root=$3
else
  root=$tmp/root
  meson install -C "$2" --destdir "$root" --no-rebuild --quiet >/dev/null
fi

fail() { echo "FAIL: $*" >&2; exit 1; }

pc=$(find "$root" -name vss.pc -path '*/pkgconfig/*' | head -n 1)
[ -n "$pc" ] || fail "no vss.pc under $root"
export PKG_CONFIG_PATH=$(dirname "$pc") PKG_CONFIG_LIBDIR=$(dirname "$pc")
export PKG_CONFIG_SYSROOT_DIR=$root
cflags=$(pkg-config --cflags vss)
libs=$(pkg-config --libs vss)
# Where they are in this tree (pkgconf puts the sysroot in front already).
under_root() { case $1 in "$root"/*) echo "$1" ;; *) echo "$root$1" ;; esac; }
incdir=$(under_root "$(pkg-config --variable=includedir vss)")
libdir=$(under_root "$(pkg-config --variable=libdir vss)")
echo "vss.pc: version $(pkg-config --modversion vss); cflags $cflags; libs $libs"

headers=("$incdir"/vss/*.h)
[ -e "${headers[0]}" ] || fail "no header in $incdir/vss"
for h in "${headers[@]}"; do
  name=vss/$(basename "$h")
  if grep -n 'jansson\|json_t' "$h"; then
    fail "$name mentions jansson"
  fi
  { grep -o '^#include [<"][^>"]*[>"]' "$h" || true; } | while read -r _ inc; do
    case $inc in
      \<vss/*\>) [ -e "$incdir/${inc:1:-1}" ] || fail "$name includes $inc, not installed" ;;
      \<*.h\>) ;;
      *) fail "$name includes $inc" ;;
    esac
  done
  echo "#include <$name>" > "$tmp/one.c"
  cc -std=c11 -Wall -Wextra -Wpedantic -Werror $cflags \
    -fsyntax-only "$tmp/one.c" || fail "$name does not compile alone as C11"
  c++ -x c++ -std=c++11 -Wall -Wextra -Werror $cflags -fsyntax-only "$tmp/one.c" ||
    fail "$name does not compile alone as C++"
done
echo "${#headers[@]} headers compile alone (C11, C++11), without jansson"

# shellcheck disable=SC2086  # the flags are words
cc -std=c17 -Wall -Wextra -Werror $cflags -o "$tmp/requester_demo" \
  "$src/examples/requester_demo.c" $libs
dynamic=$(readelf -d "$tmp/requester_demo")
grep -q 'NEEDED.*\[libvss\.so\.0\]' <<<"$dynamic" ||
  fail "requester_demo does not need libvss.so.0"
if grep -q 'RPATH\|RUNPATH' <<<"$dynamic"; then
  fail "requester_demo has an rpath"
fi
rc=0
LD_BIND_NOW=1 LD_LIBRARY_PATH=$libdir "$tmp/requester_demo" >"$tmp/out" 2>&1 || rc=$?
grep -q '^usage: requester_demo' "$tmp/out" && [ $rc -eq 2 ] ||
  fail "requester_demo did not start with the installed libvss (exit $rc): $(cat "$tmp/out")"
echo "requester_demo built out of tree against $root; runs with $libdir/libvss.so.0"

# shellcheck disable=SC2086  # the flags are words
cc -std=c17 -Wall -Wextra -Werror $cflags -o "$tmp/backup_demo" \
  "$src/examples/backup_demo.c" $libs
mkdir -p "$tmp/tree/sub"
printf 'first\n' >"$tmp/tree/a"
head -c 100000 /dev/urandom >"$tmp/tree/sub/b"
ln -s a "$tmp/tree/link"
LD_BIND_NOW=1 LD_LIBRARY_PATH=$libdir "$tmp/backup_demo" "$tmp/repo" "$tmp/tree" \
  "$tmp/restored" >"$tmp/out" 2>&1 ||
  fail "backup_demo failed with the installed libvss: $(cat "$tmp/out")"
diff -r --no-dereference "$tmp/tree" "$tmp/restored$tmp/tree" ||
  fail "backup_demo's restore differs from its tree: $(cat "$tmp/out")"
echo "backup_demo built out of tree; backed up and restored a tree with $libdir/libvss.so.0"
