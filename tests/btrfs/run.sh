#!/usr/bin/env bash
# Fixture for the btrfs suite: builds real filesystems in a private temporary
# directory, runs one test program against them, and always tears down what
# it made (mounts, FUSE daemons, loop devices, lock files), even on failure.
#
#   run.sh fsinfo PROGRAM [FUSE_HELPER]   tmpfs, overlay, proc, ext4, FUSE and btrfs mounts
#   run.sh btrfs  PROGRAM [ARGS...]       a btrfs with subvolumes, mounted twice (+ binds)
#
# The program gets the places through VSS_TEST_* variables (below).  Exit 77
# (skipped) with the reason when the machine cannot do it: not root, no
# btrfs, no loop devices.
set -euo pipefail

# Tears down everything made under $1: thaws, unmounts (FUSE, then the rest,
# deepest first, retrying while one holds another), stops FUSE daemons,
# detaches the loop devices and removes the lock files it recorded there.
teardown() {
  local dir=$1 m i
  set +e
  mounts() { awk -v t="$dir/" 'index($5, t) == 1 { print $5 }' /proc/self/mountinfo | sort -r -u; }
  for m in $(mounts); do fsfreeze -u "$m" >/dev/null 2>&1; done
  for m in $(mounts); do
    case $(findmnt -no FSTYPE --mountpoint "$m" 2>/dev/null) in
      fuse*) fusermount3 -u "$m" >/dev/null 2>&1 ;;
    esac
  done
  for i in $(cat "$dir/.pids" 2>/dev/null); do kill "$i" 2>/dev/null; done
  for i in 1 2 3 4 5; do
    for m in $(mounts); do umount "$m" 2>/dev/null; done
    [ -z "$(mounts)" ] && break
    sleep 0.5
  done
  for m in $(mounts); do echo "run.sh: lazy unmount of $m" >&2; umount -l "$m"; done
  for i in $(cat "$dir/.loops" 2>/dev/null); do losetup -d "$i" 2>/dev/null; done
  for i in $(cat "$dir/.uuids" 2>/dev/null); do
    rm -f "/run/lock/vss-btrfs-$i.lock" "/run/vss-btrfs-$i.lock"
  done
  rm -rf "$dir"
}

# The guardian: "run.sh --guard DIR PID" waits, in a session of its own (out
# of reach of a test timeout's kill of the process group), until PID is gone,
# then tears DIR down if PID's own trap could not.
if [ "${1:-}" = --guard ]; then
  while kill -0 "$3" 2>/dev/null; do sleep 0.5; done
  [ -d "$2" ] && teardown "$2" >/dev/null 2>&1
  exit 0
fi

kind=$1 prog=$2
shift 2

skip() { echo "SKIP: $*"; exit 77; }
[ "$(id -u)" -eq 0 ] || skip "needs root (loop devices, mounts)"
for t in losetup mkfs.btrfs btrfs setsid; do
  command -v "$t" >/dev/null || skip "$t is not installed (scripts/setup.sh)"
done
grep -qw btrfs /proc/filesystems || modprobe btrfs 2>/dev/null || true
grep -qw btrfs /proc/filesystems || skip "the kernel has no btrfs"

T=$(mktemp -d /tmp/vss-btrfs-test.XXXXXX)
setsid -f "$0" --guard "$T" $$ </dev/null >/dev/null 2>&1
trap 'rc=$?; teardown "$T"; exit $rc' EXIT
trap 'exit 130' INT TERM HUP

attach() {  # attach FILE SIZE: the loop device in $dev, recorded for teardown
  truncate -s "$2" "$1"
  dev=$(losetup -f --show "$1") || skip "no free loop device"
  echo "$dev" >> "$T/.loops"
}

make_btrfs() {
  attach "$T/btrfs.img" 1G
  # mkfs.btrfs gives up when some other mount is a FUSE mount whose server
  # died ("cannot check mount status"): one another test is cleaning up.
  local i out
  for i in $(seq 60); do
    out=$(mkfs.btrfs -q -f "$dev" 2>&1) && break
    case $out in *"cannot check mount status"*) sleep 0.5 ;; *) echo "$out" >&2; exit 1 ;; esac
  done
  blkid -s UUID -o value "$dev" >> "$T/.uuids" || true
  mkdir -p "$T/top" "$T/vol"
  # Per-mount flags and a compression option, so that a lost option shows.
  mount -o nosuid,nodev,noatime,compress=zstd:1 "$dev" "$T/top"
  btrfs -q subvolume create "$T/top/vol"
  echo alpha > "$T/top/vol/a.txt"
  mkdir "$T/top/vol/dir"
  echo beta > "$T/top/vol/dir/b.txt"
  btrfs -q subvolume create "$T/top/vol/nested"
  echo nested > "$T/top/vol/nested/n.txt"
  btrfs -q subvolume create "$T/top/vol/nested/deeper"
  btrfs -q subvolume create "$T/top/vol/dir/inner"
  btrfs -q subvolume create "$T/top/other"
  echo other > "$T/top/other/o.txt"
  btrfs -q subvolume create "$T/top/busy"
  mount -o subvol=vol "$dev" "$T/vol"
  export VSS_TEST_DIR=$T VSS_TEST_BTRFS_TOP=$T/top VSS_TEST_BTRFS_VOL=$T/vol
  export VSS_TEST_BTRFS_DEV=$dev
}

case $kind in
btrfs)
  make_btrfs
  # A read-only bind of a subvolume, and a bind of a plain directory.
  mkdir -p "$T/ro" "$T/bind"
  mount --bind "$T/top/other" "$T/ro"
  mount -o remount,bind,ro "$T/ro"
  mount --bind "$T/top/vol/dir" "$T/bind"
  export VSS_TEST_BTRFS_RO=$T/ro VSS_TEST_BTRFS_BIND=$T/bind
  ;;
fsinfo)
  make_btrfs
  mkdir -p "$T/tmpfs" "$T/proc" "$T/ovl" "$T/ext4" "$T/fuse" "$T/sshfs"
  mount -t tmpfs -o size=16m vss-test "$T/tmpfs"
  mkdir -p "$T/tmpfs/lower" "$T/tmpfs/upper" "$T/tmpfs/work"
  echo lower > "$T/tmpfs/lower/l.txt"
  mount -t overlay overlay \
    -o "lowerdir=$T/tmpfs/lower,upperdir=$T/tmpfs/upper,workdir=$T/tmpfs/work" "$T/ovl"
  mount -t proc proc "$T/proc"
  export VSS_TEST_DIR=$T VSS_TEST_TMPFS=$T/tmpfs VSS_TEST_OVERLAY=$T/ovl VSS_TEST_PROC=$T/proc
  if command -v mkfs.ext4 >/dev/null; then
    attach "$T/ext4.img" 32M
    mkfs.ext4 -q -F "$dev" >/dev/null
    mount "$dev" "$T/ext4"
    export VSS_TEST_EXT4=$T/ext4
  fi
  # FUSE: the helper built beside the tests, once as itself and once
  # claiming the subtype of a network filesystem (sshfs).
  fuse_helper=${1:-}
  if [ -n "$fuse_helper" ] && [ -c /dev/fuse ]; then
    for m in fuse sshfs; do
      opts=()
      [ "$m" = sshfs ] && opts=(-o subtype=sshfs)
      "$fuse_helper" -f -s "${opts[@]}" "$T/$m" &
      echo $! >> "$T/.pids"
      for _ in $(seq 50); do
        findmnt --mountpoint "$T/$m" >/dev/null 2>&1 && break
        sleep 0.1
      done
    done
    findmnt --mountpoint "$T/fuse" >/dev/null && export VSS_TEST_FUSE=$T/fuse
    findmnt --mountpoint "$T/sshfs" >/dev/null && export VSS_TEST_FUSE_SSHFS=$T/sshfs
  fi
  set -- # the helper is not an argument of the program
  ;;
*)
  echo "run.sh: unknown fixture $kind" >&2
  exit 2
  ;;
esac

"$prog" "$@"
