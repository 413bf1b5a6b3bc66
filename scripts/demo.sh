#!/usr/bin/env bash
# The main job, as a demonstration: builds vss, keeps a live volume busy,
# takes a shadow copy in the middle of it and backs the shadow up, then shows
# that the backup is exactly the volume at the shadow's instant.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
if [ -f build/demo/build.ninja ]; then
  meson setup --reconfigure build/demo -Dbuildtype=release >/dev/null
else
  meson setup build/demo -Dbuildtype=release >/dev/null
fi
ninja -C build/demo >/dev/null
work=$(mktemp -d /var/tmp/vss-demo.XXXXXX)
trap 'rm -rf "$work"' EXIT
build/demo/examples/vss-engine-demo "$work" "${VSS_DEMO_MIB:-512}"
