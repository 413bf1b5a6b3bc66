#!/bin/sh
# Short fuzz run for CI: seeds from real diff areas, then FUZZ_SECONDS of
# libFuzzer (default 60).  Usage: run-fuzz.sh MAKE_SEEDS FUZZER CORPUS_DIR
set -eu
seeds=$1 fuzzer=$2 corpus=$3
mkdir -p "$corpus"
"$seeds" "$corpus"
exec "$fuzzer" -max_total_time="${FUZZ_SECONDS:-60}" -max_len=262144 -timeout=20 \
  -rss_limit_mb=2048 -print_final_stats=1 "$corpus"
