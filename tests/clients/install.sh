# shellcheck shell=bash
# Test-only: installs the pinned third-party Minecraft Java clients that
# container-manager's responder tests talk to (see mc_status.py, mc_login.js):
#   - mcstatus 14.2.0 (+ deps) from requirements.txt, into a Python 3.13 venv
#   - minecraft-protocol 1.68.0 from package.json + package-lock.json, via `npm ci`
# Why pinned third-party clients: the responder must satisfy clients nobody here
# wrote, and a test run on a fresh machine must get exactly the same ones.
#
# Everything goes to ${CM_CACHE:-$HOME/.cache/container-manager}/clients-<hash>,
# where <hash> covers the three pin files: editing a pin gives a new directory
# instead of mutating the old one. A marker file (.cm-installed) is written last;
# a directory without it is a half-finished install and is redone. flock
# serializes concurrent installers. Idempotent and quiet: when already installed
# it prints nothing to stderr; progress/errors go to stderr, the log to
# clients-<hash>.install.log.
#
# Run:     bash tests/clients/install.sh
#          -> stdout: CM_MC_PYTHON=<venv python>
#                     CM_MC_NODE_MODULES=<dir holding minecraft-protocol>
#                     CM_MC_NODE=<node binary>
#          (KEY=VALUE lines; `eval "$(bash tests/clients/install.sh)"` also works)
# Source:  source tests/clients/install.sh   -> exports the same three variables,
#          returns non-zero on failure (never exits the caller's shell).
# Works under the caller's `set -euo pipefail`: every step checks its own status.
# Knobs: CM_CACHE, CM_PYTHON313 (interpreter), CM_NODE (node binary).

_MCC_HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

_mcc_log() { printf 'mc-clients: %s\n' "$*" >&2; }

_mcc_hash12() {  # FILES... -> first 12 hex chars of sha256 over their contents
    local sum
    if command -v sha256sum >/dev/null 2>&1; then
        sum=$(cat "$@" | sha256sum) || return 1
    else
        sum=$(cat "$@" | shasum -a 256) || return 1
    fi
    printf '%s\n' "${sum:0:12}"
}

# The interpreter search is the emulators' (each candidate is actually run, since a pyenv
# shim for python3.13 may be on PATH without 3.13 being selected).
# shellcheck source=tests/emulators/emulators.sh
source "$_MCC_HERE/../emulators/emulators.sh" || return 1 2>/dev/null || exit 1

_mcc_find_node() {
    _emu_first_runnable -e 'process.exit(parseInt(process.versions.node) >= 18 ? 0 : 1)' \
        "${CM_NODE:-}" "$(command -v node 2>/dev/null || true)" /usr/bin/node
}

_mcc_ok() {  # DIR: marker present, venv python runs, minecraft-protocol present
    [[ -f $1/.cm-installed && -x $1/venv/bin/python &&
       -f $1/node_modules/minecraft-protocol/package.json ]] &&
        "$1/venv/bin/python" -c 'import mcstatus' >/dev/null 2>&1
}

mc_clients_install() {
    local req="$_MCC_HERE/requirements.txt" pkg="$_MCC_HERE/package.json"
    local lock="$_MCC_HERE/package-lock.json" h dir py node npm lockfd="" rc=0
    h=$(_mcc_hash12 "$req" "$pkg" "$lock") || { _mcc_log "cannot hash the pin files"; return 1; }
    dir="${CM_CACHE:-$HOME/.cache/container-manager}/clients-$h"
    if ! node=$(_mcc_find_node); then
        _mcc_log "node (>= 18) not found (checked CM_NODE, node on PATH, /usr/bin/node);"
        _mcc_log "install it (apt-get install nodejs npm) and rerun."
        return 1
    fi
    if ! _mcc_ok "$dir"; then
        if ! py=$(_emu_find_python313); then
            _mcc_log "mcstatus needs Python 3.13 and none was found (checked CM_PYTHON313,"
            _mcc_log "python3.13 on PATH, ~/.pyenv/versions/3.13*). Install it (pyenv install 3.13.0,"
            _mcc_log "or apt-get install python3.13 python3.13-venv) and rerun."
            return 1
        fi
        npm="$(dirname "$node")/npm"
        [[ -x $npm ]] || npm=$(command -v npm 2>/dev/null) || npm=""
        if [[ -z $npm ]]; then
            _mcc_log "npm not found next to $node nor on PATH; install it (apt-get install npm) and rerun."
            return 1
        fi
        mkdir -p "$(dirname "$dir")" || return 1
        # Serialize concurrent installers (two test processes at once) on the same dir.
        if command -v flock >/dev/null 2>&1; then
            exec {lockfd}>"$dir.lock" || return 1
            flock "$lockfd" || { exec {lockfd}>&-; return 1; }
        fi
        # Re-check under the lock: another installer may have finished meanwhile.
        if ! _mcc_ok "$dir"; then
            _mcc_log "installing mcstatus + minecraft-protocol into $dir (a minute or two)"
            rm -rf "$dir"   # anything here without a marker is a half-finished install
            if mkdir -p "$dir" &&
               cp "$req" "$pkg" "$lock" "$dir/" &&
               "$py" -m venv "$dir/venv" >"$dir.install.log" 2>&1 &&
               "$dir/venv/bin/python" -m pip install --no-deps --no-input \
                   --disable-pip-version-check -r "$dir/requirements.txt" >>"$dir.install.log" 2>&1 &&
               "$dir/venv/bin/python" -m pip check >>"$dir.install.log" 2>&1 &&
               (cd "$dir" && PATH="$(dirname "$node"):$PATH" "$npm" ci --ignore-scripts \
                   --no-audit --no-fund --loglevel=error) >>"$dir.install.log" 2>&1 &&
               [[ -f $dir/node_modules/minecraft-protocol/package.json ]]; then
                # --no-deps installs exactly the frozen set; pip check proves it complete;
                # npm ci installs exactly the lockfile. Marker last.
                printf '%s\n' "$h" >"$dir/.cm-installed"
                _mcc_log "installed"
            else
                rc=1
                _mcc_log "install failed; end of $dir.install.log:"
                tail -n 30 "$dir.install.log" >&2 || true
            fi
        fi
        if [[ -n $lockfd ]]; then exec {lockfd}>&-; fi
        [[ $rc == 0 ]] || return 1
    fi
    CM_MC_PYTHON="$dir/venv/bin/python"
    CM_MC_NODE_MODULES="$dir/node_modules"
    CM_MC_NODE="$node"
    return 0
}

if [[ ${BASH_SOURCE[0]} != "$0" ]]; then
    # Sourced: install, then export into the caller's shell.
    if mc_clients_install; then
        export CM_MC_PYTHON CM_MC_NODE_MODULES CM_MC_NODE
    else
        return 1
    fi
else
    set -euo pipefail
    mc_clients_install
    printf 'CM_MC_PYTHON=%s\nCM_MC_NODE_MODULES=%s\nCM_MC_NODE=%s\n' \
        "$CM_MC_PYTHON" "$CM_MC_NODE_MODULES" "$CM_MC_NODE"
fi
