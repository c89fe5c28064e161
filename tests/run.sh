#!/usr/bin/env bash
# Runs every test of container-manager on a fresh machine: installs the pinned AWS
# emulators (LocalStack and moto, into virtualenvs under ~/.cache/container-manager),
# builds, starts the emulators on free loopback ports, runs unit and integration tests
# against them, and stops the emulators however the tests end.
#
#   tests/run.sh                 # everything
#   tests/run.sh --test wake     # extra arguments go to `cargo test`
set -euo pipefail
started=$(date +%s)
# shellcheck source=tests/prelude.sh
source "$(dirname "$0")/prelude.sh"

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
