#!/usr/bin/env bash
# The full benchmark (issue 7): builds the release binary, starts the emulators, runs
# tests/bench.rs in full mode (50 wakes at 1 and at 100 leafs, calls per minute at 1,
# 10, 100 and 1,000 leafs asleep and 10% awake, the same at 1,000 leafs of mixed shapes,
# footprint), then writes
# docs/bench.json and the tables between the markers in docs/performance.md.
# Takes about an hour on a 2-core machine. The test command runs a short smoke version.
# Re-measure a part: CM_BENCH_WAKES="1000x10" CM_BENCH_SIZES="" CM_BENCH_BUSY="200x30"
# CM_BENCH_MIXED="1000x12"
# (the parts left out keep their last figures).
set -euo pipefail
# shellcheck source=tests/prelude.sh
source "$(dirname "$0")/prelude.sh"
cargo build --locked --release --bin containerd
# Run the bench binary itself, so that no cargo lock is held for the half hour it takes.
bench=$(cargo test --locked --test bench --no-run 2>&1 | sed -n 's/.*Executable tests\/bench.rs (\(.*\))/\1/p')
trap emulators_stop EXIT
emulators_start
out=$(mktemp -d)
# A partial re-run (CM_BENCH_WAKES, CM_BENCH_SIZES, CM_BENCH_BUSY or CM_BENCH_MIXED set)
# keeps the other rows of docs/bench.json.
merge=""
if [[ -n ${CM_BENCH_WAKES+x}${CM_BENCH_SIZES+x}${CM_BENCH_BUSY+x}${CM_BENCH_MIXED+x} ]]; then merge=$PWD/docs/bench.json; fi
CM_BENCH=full CM_BENCH_OUT="$out" CM_BENCH_MERGE="$merge" CM_BENCH_BIN="$CARGO_TARGET_DIR/release/containerd" CM_TEST_LOG=info \
    "$bench" --nocapture
cp "$out/bench.json" docs/bench.json
python3 - "$out/bench.md" <<'PY'
import sys, re
tables = open(sys.argv[1]).read()
doc = open("docs/performance.md").read()
start, end = "<!-- bench:start -->", "<!-- bench:end -->"
doc = re.sub(re.escape(start) + ".*?" + re.escape(end), start + "\n" + tables + end, doc, flags=re.S)
open("docs/performance.md", "w").write(doc)
PY
echo "docs/performance.md and docs/bench.json updated"
