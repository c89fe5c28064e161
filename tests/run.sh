#!/usr/bin/env bash
# Runs every test of container-manager on a fresh machine: installs the pinned AWS
# emulators (LocalStack and moto, into virtualenvs under ~/.cache/container-manager) and
# the pinned Minecraft clients the responder is tested with (tests/clients/),
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

echo "== clippy"
cargo clippy --locked --all-targets -- -D warnings

echo "== cfn-lint (pinned) on deploy/cloudformation"
bash "$(dirname "$0")/cfn/lint.sh"

echo "== install the pinned Minecraft clients (mcstatus, minecraft-protocol)"
# shellcheck source=tests/clients/install.sh
source "$(dirname "$0")/clients/install.sh"

echo "== install headless Chromium from the distribution (the status page test)"
# Pinned where the archive still has the version; a machine without apt or root runs the
# page test without the browser and lists it under SKIPPED.
if ! command -v chromium-headless-shell >/dev/null 2>&1; then
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
        apt_install() { timeout 600 apt-get install -y -q --no-install-recommends "$@" >/dev/null 2>&1; }
        apt_install chromium-headless-shell=148.0.7778.167-1~deb12u1 ||
            { timeout 300 apt-get update -q >/dev/null 2>&1; apt_install chromium-headless-shell; } ||
            echo "run.sh: could not install chromium-headless-shell: the browser part of tests/page.rs is SKIPPED" >&2
    else
        echo "run.sh: chromium-headless-shell missing and no root/apt to install it: the browser part of tests/page.rs is SKIPPED" >&2
    fi
fi

trap emulators_stop EXIT
echo "== start emulators"
emulators_start

echo "== test"
status=0
# A test that cannot run here (a tool missing) says so in this file; listed at the end.
CM_SKIPPED_FILE=$(mktemp)
export CM_SKIPPED_FILE
if [[ $# -gt 0 ]]; then
    cargo test --locked "$@" || status=$?
else
    # Two lanes of test binaries side by side: the long fault scenarios (mostly waiting
    # out outages and brown-outs) next to everything else. The binaries are run
    # directly, so that no cargo lock is held while they run.
    lanes=$(mktemp -d)
    cargo test --locked --no-run --message-format=json 2>/dev/null | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        print(m["target"]["name"], m["executable"])
' >"$lanes/binaries"
    run_lane() { # lane name, then "target executable" lines on stdin
        local lane=$1 failed=0 target exe
        while read -r target exe; do
            echo "== $target ($lane lane)"
            "$exe" || { echo "== FAILED: $target"; failed=1; }
        done
        return "$failed"
    }
    long='^(faults|alerts|ha) '
    grep -E "$long" "$lanes/binaries" | run_lane long >"$lanes/long.log" 2>&1 &
    long_pid=$!
    grep -vE "$long" "$lanes/binaries" | run_lane main 2>&1 | tee "$lanes/main.log" || status=1
    wait "$long_pid" || status=1
    cat "$lanes/long.log"
    cargo test --locked --doc || status=$?
    echo "== results"
    grep -hE '^(== FAILED|test result)' "$lanes/main.log" "$lanes/long.log" || true
    rm -rf "$lanes"
fi
if [[ -s $CM_SKIPPED_FILE ]]; then
    echo "== SKIPPED (could not run here; they passed without checking anything)"
    sed 's/^/   /' "$CM_SKIPPED_FILE"
fi
rm -f "$CM_SKIPPED_FILE"
echo "== tests finished in $(( $(date +%s) - started )) s (exit $status)"
exit "$status"
