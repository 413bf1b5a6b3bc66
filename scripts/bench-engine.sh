#!/usr/bin/env bash
# Builds vss optimized (buildtype=release, assertions compiled out) in
# build-bench/, apart from the everyday build/, and runs bench-engine;
# arguments go to it (--quick, --seconds N, --dir DIR, --size MiB, --rounds
# N; --help says more).
# Figures go to stdout, build chatter to stderr.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build="$root/build-bench"

# No assert(): the figures are the release build's (b_ndebug=if-release).
if [ -f "$build/build.ninja" ]; then
  meson configure "$build" -Dbuildtype=release -Db_ndebug=if-release >&2
else
  meson setup "$build" "$root" --buildtype=release -Db_ndebug=if-release >&2
fi
ninja -C "$build" bench/bench-engine >&2
exec "$build/bench/bench-engine" "$@"
