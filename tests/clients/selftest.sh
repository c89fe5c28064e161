#!/usr/bin/env bash
# Test-only self-check of the pinned Minecraft clients (mc_status.py: mcstatus
# 14.2.0; mc_login.js: minecraft-protocol 1.68.0) against fake_server.py, a
# throwaway stand-in for the daemon's responder. Proves on this machine that
# install.sh installs them, that each sends SERVER_ADDRESS in the handshake while
# connecting to 127.0.0.1, that their JSON output is as documented, and that they
# fail with {"error": ...} and exit 1 (without hanging) on a closed port and on a
# server that never answers.
# Usage: bash tests/clients/selftest.sh     (exit 0 when every check passed)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=install.sh
source "$HERE/install.sh"

T=$(mktemp -d)
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do
        kill "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    rm -rf "$T"
}
trap cleanup EXIT

PASSED=0
FAILED=0
ADDR=mc1.example.com

start_server() {  # NAME [--silent] -> sets PORT
    local i
    "$CM_MC_PYTHON" "$HERE/fake_server.py" "$T/$1.port" "$T/$1.log" "${@:2}" 2>"$T/$1.err" &
    PIDS+=("$!")
    for ((i = 0; i < 100; i++)); do
        [[ -s $T/$1.port ]] && break
        sleep 0.05
    done
    read -r PORT <"$T/$1.port"
}

# check NAME EXPECTED_RC PY_EXPR CMD...: runs CMD, then PY_EXPR over its stdout
# parsed as one JSON object `o` (plus `log`, the fake server's handshake records).
check() {
    local name=$1 want_rc=$2 expr=$3 out rc=0 start end ok
    shift 3
    start=$(date +%s%N)
    out=$("$@" 2>"$T/check.err") || rc=$?
    end=$(date +%s%N)
    if "$CM_MC_PYTHON" - "$out" "$expr" "$T/main.log" <<'PY'
import json, sys
out, expr, log_path = sys.argv[1:4]
lines = out.splitlines()
assert len(lines) == 1, f"expected one line, got {len(lines)}"
o = json.loads(lines[0])
try:
    log = [json.loads(l) for l in open(log_path)]
except FileNotFoundError:
    log = []
sys.exit(0 if eval("(" + expr + ")") else 1)
PY
    then ok=1; else ok=0; fi
    if [[ $ok == 1 && $rc == "$want_rc" ]]; then
        PASSED=$((PASSED + 1))
        printf 'ok   %s (%d ms): %s\n' "$name" "$(((end - start) / 1000000))" "$out"
    else
        FAILED=$((FAILED + 1))
        printf 'FAIL %s: rc=%s (want %s) out=%s\n      check: %s\n' "$name" "$rc" "$want_rc" "$out" "$expr"
        sed 's/^/      stderr: /' "$T/check.err" | head -n 20
    fi
}

start_server main
MAIN_PORT=$PORT

check "mc_status: status via 127.0.0.1 with handshake address $ADDR" 0 \
    "'$ADDR' in o['motd'] and o['version'] == 'sleeping' and o['protocol'] == 47
     and o['players_online'] == 0 and o['players_max'] == 0
     and isinstance(o['latency_ms'], float)
     and any(r['address'] == '$ADDR' and r['next_state'] == 1 and r['port'] == $MAIN_PORT for r in log)" \
    "$CM_MC_PYTHON" "$HERE/mc_status.py" 127.0.0.1 "$MAIN_PORT" "$ADDR" 5

check "mc_status: protocol argument is sent and echoed" 0 \
    "o['protocol'] == 765 and '$ADDR' in o['motd']" \
    "$CM_MC_PYTHON" "$HERE/mc_status.py" 127.0.0.1 "$MAIN_PORT" "$ADDR" 5 765

check "mc_login: kicked during login with handshake address $ADDR" 0 \
    "'$ADDR' in o['kicked'] and 'come back in 30 s' in o['kicked']
     and json.loads(o['raw'])['text'] == o['kicked']
     and any(r['address'] == '$ADDR' and r['next_state'] == 2 and r['protocol'] == 765
             and r.get('username') == 'Steve' for r in log)" \
    "$CM_MC_NODE" "$HERE/mc_login.js" 127.0.0.1 "$MAIN_PORT" "$ADDR" Steve 10000

CLOSED_PORT=$("$CM_MC_PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
check "mc_status: closed port -> error" 1 "'error' in o and len(o) == 1" \
    "$CM_MC_PYTHON" "$HERE/mc_status.py" 127.0.0.1 "$CLOSED_PORT" "$ADDR" 2
check "mc_login: closed port -> error" 1 "'error' in o and len(o) == 1" \
    "$CM_MC_NODE" "$HERE/mc_login.js" 127.0.0.1 "$CLOSED_PORT" "$ADDR" Steve 2000

start_server silent --silent
check "mc_status: silent server -> timeout error" 1 "'error' in o and 'Timeout' in o['error']" \
    timeout 10 "$CM_MC_PYTHON" "$HERE/mc_status.py" 127.0.0.1 "$PORT" "$ADDR" 2
check "mc_login: silent server -> timeout error" 1 "'error' in o and 'timeout' in o['error']" \
    timeout 10 "$CM_MC_NODE" "$HERE/mc_login.js" 127.0.0.1 "$PORT" "$ADDR" Steve 2000

echo "selftest: $PASSED passed, $FAILED failed"
[[ $FAILED == 0 ]]
