#!/usr/bin/env bash
# The README's demo: installs and starts the local AWS emulators (no AWS account
# needed), runs the real daemon with one demo leaf, simulates a player's DNS query and
# narrates what happens, then stops everything.
set -euo pipefail
# shellcheck source=tests/prelude.sh
source "$(dirname "$0")/prelude.sh"
echo "== building (the first build of the AWS SDK takes 5-10 minutes)"
cargo build --locked --all-targets --quiet
trap emulators_stop EXIT
emulators_start
# The daemon's own info-level log lines are shown with a [containerd] prefix.
CM_TEST_LOG=info cargo test --locked --quiet --test demo -- --nocapture
