#!/usr/bin/env bash
# Runs every test of container-manager on a fresh machine: installs the pinned AWS
# emulators (LocalStack and moto, into virtualenvs under ~/.cache/container-manager),
# builds, starts the emulators on free loopback ports, runs unit and integration tests
# against them, and stops the emulators however the tests end.
#
#   tests/run.sh                 # everything
#   tests/run.sh --test wake     # extra arguments go to `cargo test`
set -euo pipefail
cd "$(dirname "$0")/.."

# Outside the clone, so CI reuses the build of the previous run.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/container-manager/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

started=$(date +%s)
# shellcheck source=tests/emulators/emulators.sh
source tests/emulators/emulators.sh
emulators_install

echo "== build"
cargo build --locked --all-targets

trap emulators_stop EXIT
echo "== start emulators"
emulators_start

echo "== test"
status=0
cargo test --locked "$@" || status=$?
echo "== tests finished in $(( $(date +%s) - started )) s (exit $status)"
exit "$status"
