#!/usr/bin/env bash
# Installs the Debian 12 packages vss needs to build, test and demonstrate.
# Shared by the README's two commands (scripts/demo.sh, scripts/test.sh);
# installs only what is missing, so a second run is quick.
set -euo pipefail

pkgs=(
  build-essential meson ninja-build pkg-config clang libclang-rt-14-dev
  libfuse3-dev fuse3 libjansson-dev uuid-dev libmount-dev libbtrfsutil-dev
  libsqlite3-dev sqlite3 libcmocka-dev libssl-dev liburing-dev python3 python3-pytest
  e2fsprogs xfsprogs btrfs-progs util-linux fio rsync systemd
  procps groff-base
  qemu-utils qemu-system-common
  restic borgbackup
  librbd-dev ceph-mon ceph-osd ceph-common rbd-fuse
  debhelper lintian
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
