#!/usr/bin/env bash
# The main job, as a demonstration: builds vss, starts a private vssd and a
# hook writer, makes an ext4 volume and keeps it busy with an application,
# then `vss exec` takes a shadow copy set in the middle of it (the writer's
# hooks run at freeze and thaw), mounts the shadow and runs rsync from it
# while the application goes on, and the backup is checked to be one
# consistent instant of the volume.  Everything lives in a private directory
# under /var/tmp and is removed at the end.
set -euo pipefail
# A root shell from plain `su` has no sbin directory in its PATH (Debian 10
# and later), where mkfs, losetup and the like are.
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
cd "$(dirname "$0")/.."
scripts/setup.sh
if [ "$(id -u)" -ne 0 ]; then
  echo "demo: run as root (it mounts a filesystem and uses FUSE and loop devices)" >&2
  exit 1
fi
if [ -f build/demo/build.ninja ]; then
  meson setup --reconfigure build/demo -Dbuildtype=release >/dev/null
else
  meson setup build/demo -Dbuildtype=release >/dev/null
fi
ninja -C build/demo >/dev/null
bin=$PWD/build/demo/src

work=$(mktemp -d /var/tmp/vss-demo.XXXXXX)
run=$work/run
vss() { "$bin/vss/vss" --run-dir "$run" "$@"; }
vssd_pid= writer_pid= hooks_pid=

cleanup() {
  set +e
  [ -n "$writer_pid" ] && kill "$writer_pid" 2>/dev/null && wait "$writer_pid" 2>/dev/null
  [ -n "$hooks_pid" ] && kill "$hooks_pid" 2>/dev/null && wait "$hooks_pid" 2>/dev/null
  mountpoint -q "$work/shadow" && vss unexpose "$work/shadow"
  vss delete shadows --all --quiet >/dev/null 2>&1
  mountpoint -q "$work/live" && vss volume umount demo
  if [ -n "$vssd_pid" ]; then
    kill "$vssd_pid" 2>/dev/null
    wait "$vssd_pid" 2>/dev/null
  fi
  # Whatever a failure left behind under our directory, innermost first.
  awk -v r="$work" '$5 == r || index($5, r "/") == 1 {print $5}' /proc/self/mountinfo |
    sort -r | while read -r m; do umount -l "$m"; done
  for l in $(losetup -n -O NAME,BACK-FILE 2>/dev/null | awk -v r="$work" 'index($2, r "/") == 1 {print $1}'); do
    losetup -d "$l"
  done
  rm -rf "$work"
}
trap cleanup EXIT

echo "== vssd: state and devices under $work"
"$bin/vssd/vssd" --state-dir "$work/state" --run-dir "$run" 2>"$work/vssd.log" &
vssd_pid=$!
for _ in $(seq 100); do vss status >/dev/null 2>&1 && break; sleep 0.1; done
vss status

echo "== a 1 GiB volume with ext4, mounted at $work/live"
vss volume create demo --size 1G
mkdir -p "$work/live" "$work/shadow" "$work/backup"
vss volume mount demo "$work/live" --mkfs ext4
mkdir "$work/live/data"

# The busy application: writes a 1 MiB file, makes it durable, renames it
# into place, then records it with its checksum in a ledger.  At any instant, every file the
# ledger names is complete: that is what a consistent backup must show.
(
  cd "$work/live/data"
  g=0
  while :; do
    g=$((g + 1))
    head -c 1048576 /dev/urandom > .tmp
    sync -d .tmp
    sum=$(sha256sum < .tmp | cut -d' ' -f1)
    mv .tmp "file-$g"
    echo "$g $sum" >> ledger
  done
) &
writer_pid=$!
sleep 3

echo "== a writer: vss-writer-hooks runs $work/hooks/* with freeze, then thaw"
mkdir "$work/hooks"
printf '#!/bin/sh\necho "$(date +%%T.%%N) hook 10-demo: $1" >> "%s/hooks.log"\n' "$work" \
  > "$work/hooks/10-demo"
chmod +x "$work/hooks/10-demo"
"$bin/vss-writer-hooks/vss-writer-hooks" --run-dir "$run" --hooks-dir "$work/hooks" \
  2>"$work/writer.log" &
hooks_pid=$!
for _ in $(seq 100); do
  n=$(vss list writers --json | /usr/bin/python3 -c 'import json,sys; print(len(json.load(sys.stdin)["writers"]))')
  [ "$n" -ge 1 ] && break
  sleep 0.1
done
vss list writers

echo "== backup: vss exec takes the set (with the writer), mounts the shadow, runs rsync from it"
t0=$(date +%s%N)
vss exec --for "$work/live" -- sh -c '
  echo "set $VSS_SHADOW_SET_ID: shadow $VSS_SHADOW_ID_1 of $VSS_ORIGIN_PATH_1 mounted at $VSS_SHADOW_PATH_1"
  rsync -a "$VSS_SHADOW_TARGET_1/data/" "$1/"' sh "$work/backup"
t1=$(date +%s%N)
cat "$work/hooks.log"
kill "$writer_pid"; wait "$writer_pid" 2>/dev/null || true
writer_pid=

files=$(wc -l < "$work/backup/ledger")
live=$(wc -l < "$work/live/data/ledger")
bad=0
while read -r g sum; do
  [ "$(sha256sum < "$work/backup/file-$g" | cut -d' ' -f1)" = "$sum" ] || bad=$((bad + 1))
done < "$work/backup/ledger"
ms=$(( (t1 - t0) / 1000000 ))
printf 'backed up %s files in %d.%02d s (set taken, shadow mounted, copied, released); the live volume has %s by now\n' "$files" $((ms / 1000)) $((ms % 1000 / 10)) "$live"
vss list shadowstorage
if [ "$bad" -eq 0 ] && [ "$files" -gt 0 ]; then
  echo "== the backup is consistent: every one of the $files files its ledger names is complete"
else
  echo "== the backup is NOT consistent: $bad of $files files differ from their ledger entry" >&2
  exit 1
fi
