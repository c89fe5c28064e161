# shellcheck shell=bash
# What every script in tests/ starts with: the repository root as working directory,
# the build kept outside the clone (so CI reuses the previous run's build), and the
# pinned emulators sourced and installed. Source it after `set -euo pipefail`.
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/container-manager/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# shellcheck source=tests/emulators/emulators.sh
source tests/emulators/emulators.sh
emulators_install
