#!/usr/bin/env bash
# Runs every test vss has, as CI does: installs what is missing, builds with
# -Werror, runs all suites, then the unit and engine suites (and the system
# tests of hostile input) again under AddressSanitizer + UBSan, then a short
# libFuzzer run, and builds the Debian packages and checks them
# (scripts/deb.sh); the ASan, fuzz and package builds run in the background
# at the lowest priority while the tests run.  Build trees go under
# build/ (ci, asan, fuzz, deb).  Must run as root (system tests use loop
# devices, FUSE and mounts).
set -euo pipefail
# A root shell from plain `su` has no sbin directory in its PATH (Debian 10
# and later), where mkfs, losetup and the like are.
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
cd "$(dirname "$0")/.."
scripts/setup.sh

setup() {  # setup DIR [meson options...]
  local dir=$1; shift
  if [ -f "$dir/build.ninja" ]; then
    meson setup --reconfigure "$dir" "$@" >/dev/null
  else
    meson setup "$dir" "$@" >/dev/null
  fi
}

# Each stage's wall time, printed as it ends and again at the end: CI has
# 20 minutes on 2 cores, and this is where to look when it grows.
stage_name= stage_start=$SECONDS stage_times=
stage() {
  if [ -n "$stage_name" ]; then
    stage_times+="$(printf '%5d s  %s' $((SECONDS - stage_start)) "$stage_name")"$'\n'
    printf '   (%s: %d s)\n' "$stage_name" $((SECONDS - stage_start))
  fi
  stage_name=$1 stage_start=$SECONDS
  [ -z "$1" ] || echo "== $1"
}

stage "build (-Werror)"
setup build/ci -Dwerror=true
ninja -C build/ci
# What the later stages run is built while the tests run, at the lowest
# CPU and I/O priority (nice 19, idle class): the ASan tree, the fuzz
# targets and the Debian packages (scripts/deb.sh, which checks them too).
# The system tests that run one at a time come first (tests/system/
# meson.build) and use about half a core; this took ~190 s of CI's 20
# minutes when it ran after them.
# The later stages wait for it, and print its log (build/background.log).
export FUZZ_SECONDS=${FUZZ_SECONDS:-12}
fuzz_programs() {  # the fuzz targets and their seed makers of build/fuzz
  meson introspect build/fuzz --tests | /usr/bin/python3 -c '
import json, sys
names = set()
for t in json.load(sys.stdin):
    if any(s == "fuzz" or s.endswith(":fuzz") for s in t["suite"]):
        names.update(d.split("@@")[1].rsplit("@", 1)[0] for d in t["depends"])
print(" ".join(sorted(names)))'
}
background_builds() {
  echo "== background: ASan tree"
  setup build/asan -Dwerror=true -Db_sanitize=address,undefined -Db_lundef=false \
    -Dc_args=-fno-sanitize-recover=undefined
  ninja -C build/asan
  echo "== background: fuzz targets"
  CC=clang setup build/fuzz -Dfuzz=true
  # Only the fuzz targets and their seed makers: the rest of this clang
  # build is never run (half its build time).
  # shellcheck disable=SC2046  # one word a program
  meson compile -C build/fuzz $(fuzz_programs)
  echo "== background: Debian packages"
  # The suites the package build would run (unit, writer, dist) run in
  # build/ci from the same sources: the package is built without them.
  DEB_BUILD_OPTIONS="nocheck ${DEB_BUILD_OPTIONS:-}" scripts/deb.sh
}
( renice -n 19 -p $BASHPID >/dev/null || true; ionice -c 3 -p $BASHPID || true
  background_builds ) \
  >build/background.log 2>&1 & background=$!
background_rc=
background_wait() {  # the background builds' end; fails if they failed
  if [ -z "$background_rc" ]; then
    background_rc=0
    wait $background || background_rc=$?
    background=    # reaped: its PID may now be another process's
  fi
  if [ "$background_rc" != 0 ]; then
    cat build/background.log
    echo "the background builds failed (build/background.log)" >&2
    exit 1
  fi
}
kill_tree() {  # kill_tree PID: PID and everything it started
  local c
  for c in $(pgrep -P "$1"); do kill_tree "$c"; done
  kill "$1" 2>/dev/null || true
}
background_stop() {  # at exit: the builds, if this shell's child still runs them
  if [ -n "$background" ] &&
     [ "$(ps -o ppid= -p "$background" 2>/dev/null | tr -d ' ')" = "$$" ]; then
    kill_tree "$background"
  fi
}
trap background_stop EXIT

stage "tests"
# test_stress's hostile and unlucky clients for 45 s here (120 s by hand).
VSS_STRESS_SECONDS=${VSS_STRESS_SECONDS:-45} \
  meson test -C build/ci --print-errorlogs --no-suite fuzz

stage "AddressSanitizer + UBSan"
background_wait
sed -n '/^== background: ASan/,/^== background: fuzz/p' build/background.log | tail -n 3
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
  meson test -C build/asan --print-errorlogs --suite unit --suite engine --suite writer --suite btrfs --timeout-multiplier 3
# vssd and vss themselves under the sanitizers, with the system tests that
# feed them hostile or damaged input (the others run in build/ci only: the
# whole suite twice would not fit CI's time).  Two meson runs side by side
# (each with its own log), as the system suite runs them one at a time: each
# owns its temp dirs, vssd and loop devices, and under ASan they are bound
# by one core each (about 90 s, instead of 170 s one after the other).
# Split by their ASan times in CI: test_backup 62 s, test_diff_area_loss
# 51, test_mount_safety 43, test_bad_input 12, test_roles 4.
asan_system() {  # asan_system LOGBASE TEST...
  local base=$1; shift
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
    meson test -C build/asan --no-rebuild --print-errorlogs --timeout-multiplier 3 \
    --logbase "$base" "$@" >"build/asan/meson-logs/$base.out" 2>&1
}
asan_system asan-system-1 test_backup test_bad_input test_roles & asan_1=$!
asan_system asan-system-2 test_diff_area_loss test_mount_safety & asan_2=$!
asan_rc=0
wait $asan_1 || asan_rc=1
wait $asan_2 || asan_rc=1
cat build/asan/meson-logs/asan-system-1.out build/asan/meson-logs/asan-system-2.out
[ $asan_rc = 0 ] || { echo "ASan system tests failed" >&2; exit 1; }

# A short run of every target in CI (they run two at a time); a longer
# campaign is FUZZ_SECONDS=600 scripts/test.sh, or tests/fuzz/run-fuzz.sh.
stage "fuzz (${FUZZ_SECONDS} s a target)"
meson test -C build/fuzz --no-rebuild --print-errorlogs --suite fuzz

stage "Debian packages (built in the background)"
sed -n '/^== background: Debian packages/,$p' build/background.log

# One closing line over every suite that ran (the package build's too).
stage ""
printf '%s%5d s  in all\n' "$stage_times" "$SECONDS"

/usr/bin/python3 - build/ci build/asan build/fuzz build/deb/src/obj-* <<'PY'
import glob, json, sys, os
passed = failed = skipped = 0
# testlog.json is the last meson test run of a build tree; the ASan system
# tests have logs of their own (asan-system-N.json).
for d in sys.argv[1:]:
    logs = glob.glob(os.path.join(d, "meson-logs", "testlog.json"))
    logs += glob.glob(os.path.join(d, "meson-logs", "asan-system-*.json"))
    for p in logs:
        for line in open(p):
            r = json.loads(line).get("result")
            if r in ("OK", "EXPECTEDFAIL"):
                passed += 1
            elif r == "SKIP":
                skipped += 1
            else:
                failed += 1
print(f"{passed} passed, {failed} failed, {skipped} skipped")
sys.exit(1 if failed else 0)
PY
