#!/usr/bin/env bash
# Runs a command as root inside a throw-away qemu guest with Debian 12's own
# kernel, for what this machine's kernel lacks (device-mapper, NBD).  The
# guest sees this machine's root read-only over 9p (so the checkout and its
# build are at the same paths), has tmpfs on /tmp, /run, /var/lib, /var/log
# and /var/tmp (/var/cache stays: the kernel is there), and the
# modules dm-thin-pool dm-snapshot nbd loop ext4 xfs btrfs fuse loaded.
#
#   scripts/guest.sh [--timeout S] [--mem MB] [--keep-log FILE] -- CMD [ARG...]
#
# CMD runs in the current directory; its stdout and stderr come back on
# ours, and its exit status is ours.  Exit 77: no kernel package to boot
# (scripts/setup.sh fetches it); 124: the guest ran out of time; 125: the
# guest died before CMD finished (its console is printed).
#
# The kernel: one linux-image-6.1.0-*-amd64 .deb in $VSS_GUEST_CACHE
# (default /var/cache/vss-test/kernel), unpacked and depmod'ed there once,
# with a tiny initramfs (busybox-static, the virtio and 9p modules) that
# mounts the host root and switch_roots into a stage-two script written into
# the run's private directory (a writable 9p share, which also brings back
# the output and the exit status).  Under TCG (KVM hangs this guest early)
# a boot with the modules loaded and poweroff takes about 17 s.
set -euo pipefail
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

timeout_s=600
mem=768
keep_log=
while [ $# -gt 0 ]; do
  case $1 in
    --timeout) timeout_s=$2; shift 2 ;;
    --mem) mem=$2; shift 2 ;;
    --keep-log) keep_log=$2; shift 2 ;;
    --) shift; break ;;
    -*) echo "guest: unknown option $1" >&2; exit 2 ;;
    *) break ;;
  esac
done
[ $# -gt 0 ] || { echo "usage: guest.sh [--timeout S] [--mem MB] -- CMD [ARG...]" >&2; exit 2; }

cache=${VSS_GUEST_CACHE:-/var/cache/vss-test/kernel}
for tool in qemu-system-x86_64 busybox dpkg-deb; do
  command -v "$tool" >/dev/null || { echo "guest: skipped: $tool is not installed" >&2; exit 77; }
done
debs=("$cache"/linux-image-6.1.0-*-amd64_*.deb)
if [ ! -e "${debs[0]}" ]; then
  echo "guest: skipped: no linux-image-6.1.0-*-amd64 package in $cache (scripts/setup.sh fetches one)" >&2
  exit 77
fi
deb=${debs[-1]}
kver=$(basename "$deb" | sed -E 's/^linux-image-(6\.1\.0-[0-9]+-amd64)_.*/\1/')
# Made again whenever this script changes (its init and module lists are here).
kroot=$cache/$kver.$(sha256sum "$0" | cut -c1-12)

# ---- the kernel and the initramfs, made once per kernel package ----
# module_order ROOT MOD...: the .ko files (relative to ROOT's module
# directory) that load MOD... with everything they need, in load order, from
# the modules.dep of busybox depmod (Debian's host has no kmod).
module_order() {
  local root=$1; shift
  awk -v want="$*" '
    function norm(x) { sub(/.*\//, "", x); sub(/\.ko(\..*)?$/, "", x); gsub(/-/, "_", x); return x }
    function visit(m,   n, i, parts) {
      if (done[m]++) return
      n = split(deps[m], parts, " ")
      for (i = 1; i <= n; i++) visit(norm(parts[i]))
      if (m in file) print file[m]; else missing = missing " " m
    }
    { k = $1; sub(/:$/, "", k); m = norm(k); file[m] = k; $1 = ""; deps[m] = $0 }
    END { n = split(want, w, " "); for (i = 1; i <= n; i++) { x = w[i]; gsub(/-/, "_", x); visit(x) }
          if (missing != "") { print "guest: no module" missing > "/dev/stderr"; exit 1 } }
  ' "$root/lib/modules/$kver/modules.dep"
}

prepare_kernel() {
  local tmp
  tmp=$(mktemp -d "$cache/.unpack.XXXXXX")
  trap 'rm -rf "$tmp"' RETURN
  dpkg-deb -x "$deb" "$tmp/root"
  busybox depmod -b "$tmp/root" "$kver"
  mkdir -p "$tmp/initrd"/{bin,dev,proc,sys,newroot,mods}
  cp /bin/busybox "$tmp/initrd/bin/busybox"
  local f
  module_order "$tmp/root" virtio_pci 9pnet_virtio 9p >"$tmp/order"
  while read -r f; do
    cp "$tmp/root/lib/modules/$kver/$f" "$tmp/initrd/mods/"
    basename "$f" >>"$tmp/initrd/mods/order"
  done <"$tmp/order"
  # What the guest loads after switch_root (crc32c first: libcrc32c asks the
  # crypto API for it, and there is no modprobe to load it on demand).
  module_order "$tmp/root" crc32c_generic dm-thin-pool dm-snapshot dm-zero nbd loop \
    ext4 xfs btrfs fuse >"$tmp/guest-modules"
  cat >"$tmp/initrd/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
while read -r m; do insmod "/mods/$m" || echo "initramfs: insmod $m failed"; done </mods/order
mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose hostroot /newroot || exec sh
mount -t proc proc /newroot/proc
mount -t sysfs sysfs /newroot/sys
mount -t devtmpfs devtmpfs /newroot/dev
mount -t tmpfs -o mode=1777 tmpfs /newroot/tmp
mount -t tmpfs -o mode=755 tmpfs /newroot/run
for d in lib log tmp; do mount -t tmpfs -o mode=755 tmpfs /newroot/var/$d; done
chmod 1777 /newroot/var/tmp
mkdir -p /newroot/run/vss-guest
mount -t 9p -o trans=virtio,version=9p2000.L,rw hostout /newroot/run/vss-guest || exec sh
exec switch_root /newroot /bin/sh /run/vss-guest/stage2
EOF
  chmod 755 "$tmp/initrd/init"
  (cd "$tmp/initrd" && find . | busybox cpio -o -H newc 2>/dev/null | gzip -1) >"$tmp/initrd.img"
  mkdir -p "$tmp/out"
  mv "$tmp/root" "$tmp/out/root"
  mv "$tmp/initrd.img" "$tmp/guest-modules" "$tmp/out/"
  rm -rf "$cache/$kver".*
  mv "$tmp/out" "$kroot"
}
if [ ! -f "$kroot/initrd.img" ]; then
  exec 9>"$cache/.lock"
  flock 9
  [ -f "$kroot/initrd.img" ] || prepare_kernel
  flock -u 9
fi

# ---- one run ----
run=$(mktemp -d /tmp/vss-guest.XXXXXX)
qpid=
cleanup() {
  if [ -n "$qpid" ] && kill -0 "$qpid" 2>/dev/null; then
    kill "$qpid" 2>/dev/null || true
    wait "$qpid" 2>/dev/null || true
  fi
  rm -rf "$run"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

printf '%q ' "$@" >"$run/cmd"
# The guest's /tmp, /run and /var/{lib,log,tmp} are its own tmpfs: a
# checkout below one of them (a CI clone in /tmp) is shared apart, read-only,
# and mounted at its own path over the tmpfs.
repo=$(cd "$(dirname "$0")/.." && pwd -P)
repo_share=()
repo_mount=
case "$repo/" in
/tmp/* | /run/* | /var/lib/* | /var/log/* | /var/tmp/*)
  repo_share=(-virtfs "local,path=$repo,mount_tag=hostrepo,security_model=none,readonly=on,multidevs=remap")
  repo_mount="mkdir -p $(printf '%q' "$repo") && mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose hostrepo $(printf '%q' "$repo")"
  ;;
esac
cat >"$run/stage2" <<EOF
#!/bin/sh
# The guest's second stage, from the host's root: modules, environment, CMD.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/tmp LANG=C.UTF-8 VSS_GUEST=1
mkdir -p /run/lock
while read -r m; do
  busybox insmod $(printf '%q' "$kroot/root/lib/modules/$kver")/"\$m" || echo "guest: insmod \$m failed" >&2
done <$(printf '%q' "$kroot/guest-modules")
ln -sf /proc/self/fd /dev/fd 2>/dev/null
${repo_mount:-:}
date +%s.%N >/run/vss-guest/t-ready
{ cd $(printf '%q' "$PWD") && . /run/vss-guest/cmd; } >/run/vss-guest/output 2>&1 </dev/null
echo \$? >/run/vss-guest/rc
sync
poweroff -f
EOF

t0=$(date +%s.%N)
qemu-system-x86_64 -accel tcg -smp 1 -m "$mem" -nodefaults -nographic -no-reboot \
  -kernel "$kroot/root/boot/vmlinuz-$kver" -initrd "$kroot/initrd.img" \
  -append "console=ttyS0 panic=-1 quiet loglevel=4" \
  -serial "file:$run/console" -monitor none \
  -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
  -virtfs "local,path=$run,mount_tag=hostout,security_model=none" "${repo_share[@]}" &
qpid=$!
status=0
timeout_left=$timeout_s
while kill -0 "$qpid" 2>/dev/null; do
  if [ "$timeout_left" -le 0 ]; then
    status=124
    echo "guest: out of time after ${timeout_s} s" >&2
    kill "$qpid" 2>/dev/null || true
    break
  fi
  sleep 1
  timeout_left=$((timeout_left - 1))
done
wait "$qpid" 2>/dev/null || true
qpid=
t1=$(date +%s.%N)
[ -f "$run/output" ] && cat "$run/output"
[ -n "$keep_log" ] && cp "$run/console" "$keep_log"
if [ "$status" -eq 0 ]; then
  if [ -f "$run/rc" ]; then
    status=$(cat "$run/rc")
  else
    status=125
    echo "guest: the guest stopped before the command finished; its console:" >&2
    tail -n 40 "$run/console" >&2
  fi
fi
if [ -f "$run/t-ready" ]; then
  awk -v a="$t0" -v b="$(cat "$run/t-ready")" -v c="$t1" \
    'BEGIN { printf "guest: %.1f s to boot, %.1f s in all\n", b - a, c - a }' >&2
fi
exit "$status"
