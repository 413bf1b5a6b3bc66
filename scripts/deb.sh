#!/usr/bin/env bash
# Builds the Debian packages (vss, vss-writer-postgresql, vss-writer-mariadb,
# libvss0, libvss-dev) as a distribution would, and checks them:
#   1. dpkg-buildpackage -us -uc -b in a private copy of the checkout
#      (build/deb/src; the .debs land in build/deb), whose own tests are the
#      suites that need no root (debian/rules; DEB_BUILD_OPTIONS=nocheck
#      skips them);
#   2. lintian: fails on any error, prints every other tag;
#   3. dpkg -x of every package into one clean tree (build/deb/root): the
#      files each package holds, the units, the library's links, vss.pc;
#   4. the programs run from that tree, and examples/requester_demo.c
#      builds against it alone (tests/dist/installed.sh --root).
# Needs dpkg-dev, debhelper and lintian (scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
src=$PWD
out=$src/build/deb
rm -rf "$out"
mkdir -p "$out/src" "$out/root"

fail() { echo "deb: FAIL: $*" >&2; exit 1; }
# grep -q on a command's whole output (not on a pipe: with pipefail, grep
# leaving early makes the command die of SIGPIPE and the match count as
# none).
has() { grep -q -- "$2" <<<"$1"; }

# 1. The files git knows (and new ones it does not ignore), as they are.
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  git ls-files -z --cached --others --exclude-standard |
    while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
    tar -cf - --null -T - | tar -xf - -C "$out/src"
else
  tar -cf - --exclude=./build --exclude='./build*' . | tar -xf - -C "$out/src"
fi
start=$SECONDS
if ! (cd "$out/src" &&
      DEB_BUILD_OPTIONS="parallel=$(nproc) ${DEB_BUILD_OPTIONS:-}" \
      dpkg-buildpackage -us -uc -b) >"$out/build.log" 2>&1; then
  tail -n 60 "$out/build.log"
  fail "dpkg-buildpackage (log: $out/build.log)"
fi
echo "deb: built in $((SECONDS - start)) s: $(cd "$out" && echo *.deb)"

# 2. lintian on the binary packages.
changes=$(echo "$out"/vss_*.changes)
lintian --fail-on error --tag-display-limit 0 "$changes" >"$out/lintian.log" 2>&1 ||
  { cat "$out/lintian.log"; fail "lintian reports errors"; }
echo "deb: lintian: no errors; $(grep -c '^[WIP]:' "$out/lintian.log" || true) other tags:"
sed 's/^/  /' "$out/lintian.log"

# 3. The layout, unpacked as dpkg would, without maintainer scripts.
arch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
ver=$(dpkg-parsechangelog -l debian/changelog -S Version)
for deb in "$out"/*.deb; do
  dpkg -x "$deb" "$out/root"
done
holds() {  # holds PACKAGE PATH... : each PATH is in PACKAGE's .deb
  local pkg=$1 list; shift
  list=$(dpkg -c "$out/${pkg}"_*.deb | awk '{print $6}' | sed 's|^\./|/|')
  for p in "$@"; do
    grep -qx -- "$p" <<<"$list" || fail "$pkg does not hold $p"
  done
}
holds vss /usr/sbin/vssd /usr/sbin/mount.vss /usr/bin/vss /usr/bin/vss-writer-hooks /usr/bin/vss-writer-sqlite \
  /lib/systemd/system/vssd.service /lib/systemd/system/vss-writer-hooks.service \
  /lib/systemd/system/vss-writer-sqlite@.service \
  /lib/systemd/system/vss-restore-at-boot.service /etc/vss/hooks.d/
holds vss-writer-postgresql /usr/bin/vss-writer-postgresql \
  /lib/systemd/system/vss-writer-postgresql.service \
  /usr/share/man/man8/vss-writer-postgresql.8.gz
holds vss-writer-mariadb /usr/bin/vss-writer-mariadb \
  /lib/systemd/system/vss-writer-mariadb.service /usr/share/man/man8/vss-writer-mariadb.8.gz
holds libvss0 "/usr/lib/$arch/libvss.so.0" "/usr/lib/$arch/libvss.so.$ver"
holds libvss-dev "/usr/lib/$arch/libvss.so" "/usr/lib/$arch/pkgconfig/vss.pc" \
  /usr/include/vss/requester.h /usr/include/vss/writer.h /usr/include/vss/version.h
has "$(dpkg -c "$out"/libvss0_*.deb)" 'include\|\.pc$\|/bin/' &&
  fail "libvss0 holds more than the library"
has "$(dpkg -c "$out"/vss_*.deb)" 'libvss\|include/' && fail "vss holds library files"
[ "$(readlink -f "$out/root/usr/lib/$arch/libvss.so")" = \
  "$(readlink -f "$out/root/usr/lib/$arch/libvss.so.$ver")" ] ||
  fail "libvss.so does not lead to libvss.so.$ver"
grep -qx 'ExecStart=/usr/sbin/vssd' "$out/root/lib/systemd/system/vssd.service" ||
  fail "vssd.service does not start /usr/sbin/vssd"
grep -qx 'ExecStart=/usr/bin/vss-writer-hooks' \
  "$out/root/lib/systemd/system/vss-writer-hooks.service" ||
  fail "vss-writer-hooks.service does not start /usr/bin/vss-writer-hooks"
grep -qx 'prefix=/usr' "$out/root/usr/lib/$arch/pkgconfig/vss.pc" || fail "vss.pc: prefix"
has "$(dpkg-deb -f "$out"/vss_*.deb Depends)" "libvss0 (>= ${ver//./\\.})" ||
  fail "vss does not depend on libvss0 (>= $ver): $(dpkg-deb -f "$out"/vss_*.deb Depends)"
has "$(dpkg-deb -I "$out"/vss_*.deb postinst)" 'addgroup --system --quiet vss' ||
  fail "vss's postinst does not make the group vss"
echo "deb: layout checked in $out/root"

# 4. Run from the tree: the programs start with the packaged libvss.
export LD_LIBRARY_PATH=$out/root/usr/lib/$arch
[ "$("$out/root/usr/sbin/vssd" --version)" = "vssd $ver" ] || fail "vssd --version"
[ "$("$out/root/usr/bin/vss" --version)" = "vss $ver" ] || fail "vss --version"
for w in vss-writer-hooks vss-writer-sqlite vss-writer-postgresql vss-writer-mariadb; do
  has "$(ldd "$out/root/usr/bin/$w")" "libvss.so.0 => $out/root/usr/lib/$arch/" ||
    fail "$w does not take libvss.so.0 from the tree"
done
unset LD_LIBRARY_PATH
tests/dist/installed.sh "$src" --root "$out/root"
echo "deb: ok"
