#!/usr/bin/env bash
# The main job, as a demonstration: builds vss, starts a private vssd, makes
# an ext4 volume and keeps it busy with a writer, takes a shadow copy in the
# middle of it, backs the shadow up with rsync while the writer goes on, and
# checks that the backup is one consistent instant of the volume.  Everything
# lives in a private directory under /var/tmp and is removed at the end.
set -euo pipefail
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
vssd_pid= writer_pid=

cleanup() {
  set +e
  [ -n "$writer_pid" ] && kill "$writer_pid" 2>/dev/null && wait "$writer_pid" 2>/dev/null
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

echo "== shadow copy of the busy volume"
vss create shadow --for "$work/live" --json > "$work/set.json"
shadow=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["shadows"][0]["id"])' "$work/set.json")
/usr/bin/python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print("set %s, shadow %s, filesystem frozen %.1f ms" % (d["set"], d["shadows"][0]["id"], d.get("frozen_ms", 0)))' "$work/set.json"

echo "== backup: rsync from the shadow while the writer goes on"
vss expose "$shadow" "$work/shadow"
t0=$(date +%s.%N)
rsync -a "$work/shadow/data/" "$work/backup/"
t1=$(date +%s.%N)
vss unexpose "$work/shadow"
kill "$writer_pid"; wait "$writer_pid" 2>/dev/null || true
writer_pid=

files=$(wc -l < "$work/backup/ledger")
live=$(wc -l < "$work/live/data/ledger")
bad=0
while read -r g sum; do
  [ "$(sha256sum < "$work/backup/file-$g" | cut -d' ' -f1)" = "$sum" ] || bad=$((bad + 1))
done < "$work/backup/ledger"
printf 'backed up %s files in %.2f s; the live volume has %s by now\n' "$files" "$(echo "$t1 - $t0" | bc)" "$live"
vss list shadows
vss list shadowstorage
if [ "$bad" -eq 0 ] && [ "$files" -gt 0 ]; then
  echo "== the backup is consistent: every one of the $files files its ledger names is complete"
else
  echo "== the backup is NOT consistent: $bad of $files files differ from their ledger entry" >&2
  exit 1
fi
