#!/usr/bin/env bash
# Lints the CloudFormation templates in deploy/cloudformation/ with a pinned cfn-lint
# (1.58.0 and its dependencies, frozen in requirements.txt next to this script).
# Why pinned: cfn-lint's rules and resource specs change with every release; a template
# that passes today must pass on a fresh machine tomorrow, and a new finding must come
# from a change here, not from an upgrade.
#
# The venv lives in ${CM_TOOLS_DIR:-$CM_CACHE/tools}/cfn-lint-<hash> (CM_CACHE defaults to
# ~/.cache/container-manager), where <hash> covers requirements.txt: editing a pin gives
# a new venv instead of mutating the old one. A marker (.cm-installed) is written last; a
# venv without it is a half-finished install and is redone; flock serializes concurrent
# installers. Same scheme as tests/emulators/emulators.sh and tests/clients/install.sh.
#
# Usage:  bash tests/cfn/lint.sh [TEMPLATE...]   (default: deploy/cloudformation/*.yaml)
# Prints "ok <template>" per clean template; any finding (error, warning) is printed and
# the exit status is 1. Install problems: exit 2. Idempotent; quiet once installed.
# Knobs: CM_TOOLS_DIR, CM_CACHE, CM_PYTHON313 (interpreter; any python3 >= 3.9 is used
# when no 3.13 is found, and `pip check` proves the frozen set still fits it).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
req="$here/requirements.txt"

log() { printf 'cfn-lint: %s\n' "$*" >&2; }

# The interpreter search and sha helper are the emulators' (each candidate is run).
# shellcheck source=tests/emulators/emulators.sh
source "$root/tests/emulators/emulators.sh"

venv_ok() {
    [[ -f $1/.cm-installed && -x $1/bin/cfn-lint ]] && "$1/bin/python" -c 'import cfnlint' >/dev/null 2>&1
}

h=$(_emu_sha12 "$req") || { log "cannot hash $req"; exit 2; }
venv="${CM_TOOLS_DIR:-${CM_CACHE:-$HOME/.cache/container-manager}/tools}/cfn-lint-$h"

if ! venv_ok "$venv"; then
    if ! py=$(_emu_find_python313); then
        py=$(command -v python3 2>/dev/null) &&
            "$py" -c 'import sys; sys.exit(sys.version_info < (3, 9))' >/dev/null 2>&1 ||
            { log "no Python found (CM_PYTHON313, python3.13, ~/.pyenv/versions/3.13*, python3 >= 3.9)"; exit 2; }
    fi
    mkdir -p "$(dirname "$venv")"
    lockfd=""
    if command -v flock >/dev/null 2>&1; then
        exec {lockfd}>"$venv.lock"
        flock "$lockfd"
    fi
    # Re-check under the lock: another installer may have finished meanwhile.
    if ! venv_ok "$venv"; then
        log "installing cfn-lint into $venv (half a minute)"
        rm -rf "$venv"   # anything here without a marker is a half-finished install
        if "$py" -m venv "$venv" >"$venv.install.log" 2>&1 &&
           "$venv/bin/python" -m pip install --no-deps --no-input --disable-pip-version-check \
               -r "$req" >>"$venv.install.log" 2>&1 &&
           "$venv/bin/python" -m pip check >>"$venv.install.log" 2>&1; then
            # --no-deps installs exactly the frozen set; pip check proves it is complete.
            printf '%s\n' "$req" >"$venv/.cm-installed"
            log "installed"
        else
            log "install failed; end of $venv.install.log:"
            tail -n 30 "$venv.install.log" >&2 || true
            exit 2
        fi
    fi
    if [[ -n $lockfd ]]; then exec {lockfd}>&-; fi
fi

if (($#)); then
    templates=("$@")
else
    shopt -s nullglob
    templates=("$root"/deploy/cloudformation/*.yaml)
    shopt -u nullglob
    ((${#templates[@]})) || { log "no templates in $root/deploy/cloudformation"; exit 2; }
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
