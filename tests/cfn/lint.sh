#!/usr/bin/env bash
# Lints the CloudFormation templates in deploy/cloudformation/ with a pinned cfn-lint.
# Why pinned: cfn-lint's rules and resource specs change with every release; a template
# that passes today must pass on a fresh machine tomorrow, and a new finding must come
# from a change here, not from an upgrade.
#
# cfn-lint 1.58.0 is already part of moto's frozen environment
# (tests/emulators/requirements-moto.txt: moto's CloudFormation uses it), so this uses
# that venv, installed by the emulators' own idempotent installer.
#
# Usage:  bash tests/cfn/lint.sh [TEMPLATE...]   (default: deploy/cloudformation/*.yaml)
# Prints "ok <template>" per clean template; any finding (error, warning) is printed and
# the exit status is 1. Install problems: exit 2.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"

# shellcheck source=tests/emulators/emulators.sh
source "$root/tests/emulators/emulators.sh"
emulators_install || exit 2
venv=$(_emu_venv_dir moto "$_EMU_MOTO_REQ") || exit 2
"$venv/bin/cfn-lint" --version | grep -q '1\.58\.0' || { echo "cfn-lint: expected 1.58.0 in $venv" >&2; exit 2; }

if (($#)); then
    templates=("$@")
else
    shopt -s nullglob
    templates=("$root"/deploy/cloudformation/*.yaml)
    shopt -u nullglob
    ((${#templates[@]})) || { echo "cfn-lint: no templates in $root/deploy/cloudformation" >&2; exit 2; }
fi

rc=0
for t in "${templates[@]}"; do
    name=${t#"$root"/}
    # cfn-lint's exit status is a bit mask (2 error, 4 warning, 8 informational); its
    # default rule set reports errors and warnings. Any output at all counts as a finding.
    out=$("$venv/bin/cfn-lint" --format parseable -- "$t" 2>&1) && st=0 || st=$?
    if [[ $st == 0 && -z $out ]]; then
        printf 'ok %s\n' "$name"
    else
        printf '%s\n' "$out"
        printf 'FAIL %s (cfn-lint exit %s)\n' "$name" "$st"
        rc=1
    fi
done
exit "$rc"
