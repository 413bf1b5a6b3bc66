#!/usr/bin/env bash
# Installs the Debian 12 packages vss needs to build, test and demonstrate.
# Shared by the README's two commands (scripts/demo.sh, scripts/test.sh);
# installs only what is missing, so a second run is quick.
set -euo pipefail

pkgs=(
  build-essential meson ninja-build pkg-config clang libclang-rt-14-dev
  libfuse3-dev fuse3 libjansson-dev uuid-dev libmount-dev libbtrfsutil-dev
  libsqlite3-dev sqlite3 libcmocka-dev libssl-dev liburing-dev python3 python3-pytest
  libext2fs-dev comerr-dev
  e2fsprogs xfsprogs btrfs-progs util-linux fio rsync systemd
  procps groff-base
  qemu-utils qemu-system-common qemu-system-x86 busybox-static
  lvm2 thin-provisioning-tools nbdkit libnbd-bin python3-libnbd nbd-client
  restic borgbackup
  samba samba-vfs-modules smbclient
  librbd-dev ceph-mon ceph-osd ceph-common rbd-fuse
  debhelper lintian
  postgresql postgresql-contrib libpq-dev mariadb-server mariadb-client libmariadb-dev
)

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing packages (${missing[*]}); run as root to install them" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The guest (scripts/guest.sh) boots Debian 12's own kernel, for what this
# machine's may lack (device-mapper, NBD): one linux-image package, fetched
# once into a cache, never installed.
kcache=${VSS_GUEST_CACHE:-/var/cache/vss-test/kernel}
if ! ls "$kcache"/linux-image-6.1.0-*-amd64_*.deb >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ]; then
  kpkg=$(apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-amd64$' | cut -d' ' -f1 |
         sort -V | tail -n 1)
  if [ -n "$kpkg" ]; then
    mkdir -p "$kcache"
    echo "setup: fetching $kpkg into $kcache (for scripts/guest.sh)" >&2
    (cd "$kcache" && apt-get download -q "$kpkg" >/dev/null 2>&1) ||
      echo "setup: could not fetch $kpkg: the tests in the guest will be skipped" >&2
  fi
fi
