# shellcheck shell=bash
# AWS emulators for container-manager's tests, run as plain processes on loopback
# (no Docker on our machines): LocalStack 2026.3.0 for Route53, CloudWatch Logs,
# CloudWatch, SNS, SQS (and its own CloudFormation for those, used by tests/cfn/deploy.py)
# and moto server 5.2.5 (through moto_main.py, which makes it
# answer like AWS where tests need it) for AutoScaling, EC2, ECS, EFS, ELBv2,
# Application Auto Scaling, DynamoDB, IAM, STS, CloudFormation.
# Why this split: shared/brief/emulators.md.
#
# Source it, then:
#   emulators_install   create the venvs from the frozen requirements (idempotent, quiet)
#   emulators_start     start both, wait until ready, export AWS_* and CM_* variables
#   emulators_stop      stop what emulators_start started (safe to call twice)
# Typical use:
#   source tests/emulators/emulators.sh
#   trap emulators_stop EXIT
#   emulators_start
# Standalone:  bash tests/emulators/emulators.sh run       (prints exports, Ctrl-C stops)
#              bash tests/emulators/emulators.sh install
#
# Knobs: CM_CACHE (venv location), CM_KEEP_EMULATOR_LOGS=1 (keep the run dir),
# CM_LOCALSTACK_TIMEOUT / CM_MOTO_TIMEOUT (readiness, seconds), CM_PYTHON313 (interpreter).
# Written to work under `set -euo pipefail` in the caller: every step checks its own
# status and the functions return 1 (never exit) on failure.

_EMU_HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
_EMU_LOCALSTACK_REQ="$_EMU_HERE/requirements-localstack.txt"
_EMU_MOTO_REQ="$_EMU_HERE/requirements-moto.txt"
_EMU_LOCALSTACK_SERVICES="route53,logs,cloudwatch,sns,sqs,cloudformation"
_EMU_RUN_DIR="${_EMU_RUN_DIR:-}"   # set by emulators_start, cleared by emulators_stop (kept if sourced again)

_emu_log() { printf 'emulators: %s\n' "$*" >&2; }

_emu_sha12() {
    local sum
    if command -v sha256sum >/dev/null 2>&1; then
        sum=$(sha256sum "$1") || return 1
    else
        sum=$(shasum -a 256 "$1") || return 1
    fi
    printf '%s\n' "${sum:0:12}"
}

# Venv for one requirements file; its name carries the file's hash, so editing the
# file gives a new venv instead of mutating the old one.
_emu_venv_dir() {  # NAME REQFILE
    local h
    h=$(_emu_sha12 "$2") || return 1
    printf '%s\n' "${CM_CACHE:-$HOME/.cache/container-manager}/venv/$1-$h"
}

# A venv counts as installed only once the marker exists (written last) and its
# python still runs (a removed pyenv version would leave a dangling symlink).
_emu_venv_ok() {
    [[ -f $1/.cm-installed && -x $1/bin/python ]] && "$1/bin/python" -c '' >/dev/null 2>&1
}

# LocalStack 2026.3.0 needs Python 3.13; moto uses the same interpreter so one
# install covers both. Each candidate is actually run: a pyenv shim for python3.13
# is on PATH even when pyenv has not selected 3.13 and then fails when run.
_emu_find_python313() {
    _emu_first_runnable -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))' \
        "${CM_PYTHON313:-}" "$(command -v python3.13 2>/dev/null || true)" \
        "$HOME"/.pyenv/versions/3.13*/bin/python3.13
}

# Prints the first CANDIDATE (empty ones skipped) that exists and for which
# `CANDIDATE FLAG CODE` succeeds: an interpreter that really runs that code.
_emu_first_runnable() {  # FLAG CODE CANDIDATE...
    local flag=$1 code=$2 c
    shift 2
    for c; do
        [[ -n $c && -x $c ]] || continue
        if "$c" "$flag" "$code" >/dev/null 2>&1; then
            printf '%s\n' "$c"
            return 0
        fi
    done
    return 1
}

_emu_install_one() {  # NAME REQFILE PYTHON
    local name=$1 req=$2 py=$3 venv lockfd rc=0
    venv=$(_emu_venv_dir "$name" "$req") || return 1
    mkdir -p "$(dirname "$venv")" || return 1
    # Serialize concurrent installers (two test scripts at once) on the same venv.
    if command -v flock >/dev/null 2>&1; then
        exec {lockfd}>"$venv.lock" || return 1
        flock "$lockfd" || return 1
    fi
    if ! _emu_venv_ok "$venv"; then
        _emu_log "installing $name into $venv (about a minute)"
        # Anything there without a marker is a half-finished install: start over.
        rm -rf "$venv"
        if "$py" -m venv "$venv" >"$venv.install.log" 2>&1 &&
           "$venv/bin/python" -m pip install --no-deps --no-input --disable-pip-version-check \
               -r "$req" >>"$venv.install.log" 2>&1 &&
           "$venv/bin/python" -m pip check >>"$venv.install.log" 2>&1; then
            # --no-deps installs exactly the frozen set; pip check proves it is complete.
            printf '%s\n' "$req" >"$venv/.cm-installed"
            _emu_log "installed $name"
        else
            rc=1
            _emu_log "installing $name failed; end of $venv.install.log:"
            tail -n 30 "$venv.install.log" >&2 || true
        fi
    fi
    if [[ -n ${lockfd:-} ]]; then exec {lockfd}>&-; fi
    return "$rc"
}

emulators_install() {
    local py ls_pid moto_pid rc=0 ls_venv moto_venv
    ls_venv=$(_emu_venv_dir localstack "$_EMU_LOCALSTACK_REQ") || return 1
    moto_venv=$(_emu_venv_dir moto "$_EMU_MOTO_REQ") || return 1
    # Fast path: nothing to do, say nothing.
    if _emu_venv_ok "$ls_venv" && _emu_venv_ok "$moto_venv"; then
        return 0
    fi
    if ! py=$(_emu_find_python313); then
        _emu_log "LocalStack 2026.3.0 needs Python 3.13 and none was found (checked CM_PYTHON313,"
        _emu_log "python3.13 on PATH, ~/.pyenv/versions/3.13*). Install it (pyenv install 3.13.0,"
        _emu_log "or apt install python3.13 python3.13-venv) and rerun."
        return 1
    fi
    # The two installs are independent: run them side by side.
    _emu_install_one localstack "$_EMU_LOCALSTACK_REQ" "$py" &
    ls_pid=$!
    _emu_install_one moto "$_EMU_MOTO_REQ" "$py" &
    moto_pid=$!
    wait "$ls_pid" || rc=1
    wait "$moto_pid" || rc=1
    return "$rc"
}

# True while PID runs (a zombie waiting to be reaped does not count).
_emu_alive() {
    local stat
    kill -0 "$1" 2>/dev/null || return 1
    [[ -r /proc/$1/stat ]] || return 0
    read -r stat 2>/dev/null <"/proc/$1/stat" || return 1
    stat=${stat##*) }
    [[ ${stat:0:1} != Z ]]
}

# True while process group PGID has a member that is not a zombie. The emulators are
# orphans once started (see _emu_spawn), so a dead one stays a zombie until init
# reaps it, and init here (process_api) can take seconds: kill -0 alone would wait.
_emu_group_alive() {
    local f stat state pgrp
    kill -0 -- "-$1" 2>/dev/null || return 1
    [[ -d /proc/self ]] || return 0
    for f in /proc/[0-9]*/stat; do
        read -r stat 2>/dev/null <"$f" || continue
        read -r state _ pgrp _ <<<"${stat##*) }"
        [[ $pgrp == "$1" && $state != Z ]] && return 0
    done
    return 1
}

# Start a command in its own session (so its whole process group can be signalled)
# with output to RUN/NAME.log, and wait for its pid in RUN/NAME.pid. The subshell
# detaches it from the caller's job table, so a plain `wait` in the caller does not
# hang on it. bash -c writes $$ itself because setsid forks when its caller already
# leads a process group, and then $! would be the wrong pid.
_emu_spawn() {  # NAME RUN CMD...
    local name=$1 run=$2 i
    shift 2
    (
        cd "$run" || exit 1
        # shellcheck disable=SC2016  # $$ and $@ belong to the inner bash
        setsid bash -c 'echo "$$" >"$0.tmp" && mv "$0.tmp" "$0" && exec "$@"' \
            "$run/$name.pid" "$@" >"$run/$name.log" 2>&1 </dev/null &
    ) || return 1
    for ((i = 0; i < 100; i++)); do
        [[ -s $run/$name.pid ]] && return 0
        sleep 0.05
    done
    _emu_log "$name did not start"
    return 1
}

_emu_pid() {  # RUN NAME -> pid from RUN/NAME.pid, if any
    local pid=""
    [[ -s $1/$2.pid ]] && read -r pid <"$1/$2.pid"
    [[ $pid =~ ^[0-9]+$ ]] && printf '%s\n' "$pid"
}

_emu_localstack_ready() {  # PYTHON URL: health lists every service available, init done
    "$1" - "$2" "$_EMU_LOCALSTACK_SERVICES" <<'PY' >/dev/null 2>&1
import json, sys, urllib.request
base, services = sys.argv[1], sys.argv[2].split(",")
op = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy
try:
    health = json.load(op.open(base + "/_localstack/health", timeout=2))
    init = json.load(op.open(base + "/_localstack/init/ready", timeout=2))
except Exception:
    sys.exit(1)
states = health.get("services", {})
ok = init.get("completed") is True and all(states.get(s) in ("available", "running") for s in services)
sys.exit(0 if ok else 1)
PY
}

_emu_moto_ready() {  # PYTHON URL
    "$1" - "$2" <<'PY' >/dev/null 2>&1
import sys, urllib.request
op = urllib.request.build_opener(urllib.request.ProxyHandler({}))
try:
    sys.exit(0 if op.open(sys.argv[1] + "/moto-api/", timeout=2).status == 200 else 1)
except Exception:
    sys.exit(1)
PY
}

_emu_fail_start() {  # RUN NAME MESSAGE: show the log, undo the half start
    _emu_log "$3; last lines of $1/$2.log:"
    tail -n 40 "$1/$2.log" >&2 2>/dev/null || true
    emulators_stop
    return 1
}

emulators_start() {
    local run ls_venv moto_venv ports ls_port moto_port ls_url moto_url ls_pid moto_pid
    local t0 ls_ready=0 moto_ready=0 ls_deadline moto_deadline keep
    if [[ -n $_EMU_RUN_DIR ]]; then
        _emu_log "already started (run dir $_EMU_RUN_DIR); call emulators_stop first"
        return 1
    fi
    emulators_install || return 1
    ls_venv=$(_emu_venv_dir localstack "$_EMU_LOCALSTACK_REQ") || return 1
    moto_venv=$(_emu_venv_dir moto "$_EMU_MOTO_REQ") || return 1

    run=$(mktemp -d "${TMPDIR:-/tmp}/cm-emulators.XXXXXX") || return 1
    _EMU_RUN_DIR=$run
    # emulators_stop only deletes a run dir carrying .cm-emulators.
    if ! touch "$run/.cm-emulators" ||
       ! mkdir -p "$run/tmp" "$run/localstack/fs" "$run/localstack/config" "$run/localstack/cache"; then
        emulators_stop
        return 1
    fi

    # Two distinct free loopback ports: bind port 0 twice, holding both sockets.
    ports=$("$moto_venv/bin/python" -c '
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))') || { emulators_stop; return 1; }
    read -r ls_port moto_port <<<"$ports"
    ls_url="http://127.0.0.1:$ls_port"
    moto_url="http://127.0.0.1:$moto_port"

    # Neither emulator may pick up the user's AWS setup, a LocalStack account or a
    # PYTHONPATH; their temp files go to the run dir (LocalStack logs a harmless
    # "TMPDIR is deprecated" warning about this).
    local -a clean_env=(env -u AWS_PROFILE -u AWS_DEFAULT_PROFILE -u AWS_ENDPOINT_URL
        -u LOCALSTACK_AUTH_TOKEN -u LOCALSTACK_API_KEY -u ACTIVATE_PRO -u PYTHONPATH -u PYTHONHOME
        AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
        TMPDIR="$run/tmp" NO_PROXY="127.0.0.1,localhost" no_proxy="127.0.0.1,localhost")

    t0=$SECONDS
    # LocalStack on the host, through localstack_main.py (= python -m
    # localstack.runtime.main, plus binding to GATEWAY_LISTEN's host, which LocalStack's
    # gateway ignores). Each variable and why:
    #  GATEWAY_LISTEN        listen on this loopback port only (default 0.0.0.0:4566)
    #  LOCALSTACK_HOST       host:port in URLs it hands out (SQS queue URLs...); the default
    #                        localhost.localstack.cloud needs public DNS
    #  SQS_ENDPOINT_STRATEGY=path  queue URLs http://127.0.0.1:P/queue/<region>/<acct>/<q>
    #                        rather than sqs.<region>.<host>, which would not resolve
    #  SERVICES, EAGER_SERVICE_LOADING  only our five (+ cloudformation, which deploys
    #                        templates' Route53/SNS/Logs resources onto these five:
    #                        tests/cfn/deploy.py), loaded at start so a broken one
    #                        fails here and the first test request is not slow
    #  GATEWAY_SERVER=twisted  the default, pinned: localstack_main.py patches it
    #  OVERRIDE_IN_DOCKER=0  this machine has /.dockerenv: LocalStack would think it runs
    #                        in its own image and use /var/lib/localstack, /tmp/localstack
    #  FILESYSTEM_ROOT       its state/cache/TLS-cert tree; default is inside the venv
    #  PERSISTENCE=0         no state kept between runs
    #  CONFIG_DIR            else it loads ~/.localstack/default.env profiles
    #  XDG_CACHE_HOME        else plux writes its entry-point cache to ~/.cache/plux
    #  DISABLE_EVENTS=1      no analytics calls home
    #  SKIP_SSL_CERT_DOWNLOAD=1  do not fetch its TLS cert from the net (self-signed instead)
    #  DNS_ADDRESS=0         no DNS server (default: 0.0.0.0:53, forwarding upstream)
    _emu_spawn localstack "$run" "${clean_env[@]}" \
        GATEWAY_LISTEN="127.0.0.1:$ls_port" \
        LOCALSTACK_HOST="127.0.0.1:$ls_port" \
        SQS_ENDPOINT_STRATEGY=path \
        SERVICES="$_EMU_LOCALSTACK_SERVICES" \
        EAGER_SERVICE_LOADING=1 \
        GATEWAY_SERVER=twisted \
        OVERRIDE_IN_DOCKER=0 \
        FILESYSTEM_ROOT="$run/localstack/fs" \
        PERSISTENCE=0 \
        CONFIG_DIR="$run/localstack/config" \
        XDG_CACHE_HOME="$run/localstack/cache" \
        DISABLE_EVENTS=1 \
        SKIP_SSL_CERT_DOWNLOAD=1 \
        DNS_ADDRESS=0 \
        "$ls_venv/bin/python" "$_EMU_HERE/localstack_main.py" || { emulators_stop; return 1; }
    _emu_spawn moto "$run" "${clean_env[@]}" \
        "$moto_venv/bin/python" "$_EMU_HERE/moto_main.py" -H 127.0.0.1 -p "$moto_port" || { emulators_stop; return 1; }
    if ! ls_pid=$(_emu_pid "$run" localstack) || ! moto_pid=$(_emu_pid "$run" moto); then
        emulators_stop
        return 1
    fi

    # Watchdog: if the shell that started us dies without calling emulators_stop
    # (killed, CI timeout), stop both groups instead of leaving them running.
    keep=${CM_KEEP_EMULATOR_LOGS:-0}
    # shellcheck disable=SC2016  # the script's variables belong to the inner bash
    _emu_spawn watchdog "$run" bash -c '
        owner=$1 run=$2 keep=$3; shift 3
        while kill -0 "$owner" 2>/dev/null; do sleep 2; done
        for g; do kill -TERM -- "-$g" 2>/dev/null; done
        sleep 5
        for g; do kill -KILL -- "-$g" 2>/dev/null; done
        [ "$keep" = 1 ] || rm -rf "$run"' _ "$$" "$run" "$keep" "$ls_pid" "$moto_pid" ||
        { emulators_stop; return 1; }

    ls_deadline=$((SECONDS + ${CM_LOCALSTACK_TIMEOUT:-120}))
    moto_deadline=$((SECONDS + ${CM_MOTO_TIMEOUT:-60}))
    while [[ $ls_ready$moto_ready != 11 ]]; do
        if [[ $ls_ready == 0 ]]; then
            if _emu_localstack_ready "$ls_venv/bin/python" "$ls_url"; then
                ls_ready=1
                _emu_log "LocalStack ready at $ls_url after $((SECONDS - t0)) s"
            elif ! _emu_alive "$ls_pid"; then
                _emu_fail_start "$run" localstack "LocalStack exited during start"; return 1
            elif grep -q 'runtime exited unexpectedly' "$run/localstack.log" 2>/dev/null; then
                # Its main thread died but other threads keep the process up: don't wait.
                _emu_fail_start "$run" localstack "LocalStack failed to start"; return 1
            elif ((SECONDS >= ls_deadline)); then
                _emu_fail_start "$run" localstack "LocalStack not ready after ${CM_LOCALSTACK_TIMEOUT:-120} s"; return 1
            fi
        fi
        if [[ $moto_ready == 0 ]]; then
            if _emu_moto_ready "$moto_venv/bin/python" "$moto_url"; then
                moto_ready=1
                _emu_log "moto ready at $moto_url after $((SECONDS - t0)) s"
            elif ! _emu_alive "$moto_pid"; then
                _emu_fail_start "$run" moto "moto exited during start"; return 1
            elif ((SECONDS >= moto_deadline)); then
                _emu_fail_start "$run" moto "moto not ready after ${CM_MOTO_TIMEOUT:-60} s"; return 1
            fi
        fi
        [[ $ls_ready$moto_ready == 11 ]] || sleep 0.5
    done

    # Point the AWS SDK at the emulators, and make sure nothing on the machine
    # (profiles, config files, session tokens, a global endpoint, IMDS) interferes.
    unset AWS_PROFILE AWS_DEFAULT_PROFILE AWS_SESSION_TOKEN AWS_SECURITY_TOKEN \
        AWS_ROLE_ARN AWS_ROLE_SESSION_NAME AWS_WEB_IDENTITY_TOKEN_FILE \
        AWS_CONTAINER_CREDENTIALS_RELATIVE_URI AWS_CONTAINER_CREDENTIALS_FULL_URI \
        AWS_CONTAINER_AUTHORIZATION_TOKEN AWS_ENDPOINT_URL AWS_IGNORE_CONFIGURED_ENDPOINT_URLS \
        AWS_USE_FIPS_ENDPOINT AWS_USE_DUALSTACK_ENDPOINT
    export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
    export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
    export AWS_REGION="${AWS_REGION:-us-east-1}"
    export AWS_DEFAULT_REGION="$AWS_REGION"   # what Python clients (boto3) read
    export AWS_EC2_METADATA_DISABLED=true
    export NO_PROXY="127.0.0.1,localhost${NO_PROXY:+,$NO_PROXY}"
    export no_proxy="$NO_PROXY"
    export AWS_ENDPOINT_URL_ROUTE_53="$ls_url"
    export AWS_ENDPOINT_URL_CLOUDWATCH_LOGS="$ls_url"
    export AWS_ENDPOINT_URL_CLOUDWATCH="$ls_url"
    export AWS_ENDPOINT_URL_SNS="$ls_url"
    export AWS_ENDPOINT_URL_SQS="$ls_url"
    export AWS_ENDPOINT_URL_AUTO_SCALING="$moto_url"
    export AWS_ENDPOINT_URL_EC2="$moto_url"
    export AWS_ENDPOINT_URL_ECS="$moto_url"
    export AWS_ENDPOINT_URL_EFS="$moto_url"
    # AWS_ENDPOINT_URL_ + the SDK's service id upper-cased, spaces as underscores
    # (aws-runtime's format_service_id_for_env; botocore does the same).
    export AWS_ENDPOINT_URL_ELASTIC_LOAD_BALANCING_V2="$moto_url"
    export AWS_ENDPOINT_URL_APPLICATION_AUTO_SCALING="$moto_url"
    export AWS_ENDPOINT_URL_DYNAMODB="$moto_url"
    export AWS_ENDPOINT_URL_IAM="$moto_url"
    export AWS_ENDPOINT_URL_STS="$moto_url"
    export AWS_ENDPOINT_URL_CLOUDFORMATION="$moto_url"
    export CM_LOCALSTACK_URL="$ls_url" CM_MOTO_URL="$moto_url" CM_EMULATOR_RUN_DIR="$run"
    # A python with boto3 (and cfn-lint's decoder) for test tools such as tests/cfn/deploy.py.
    export CM_MOTO_PYTHON="$moto_venv/bin/python"
    return 0
}

# Signal one process group: TERM, then KILL what is left after a few seconds.
_emu_stop_groups() {  # PGID...
    local g i left
    for g; do kill -TERM -- "-$g" 2>/dev/null || true; done
    for ((i = 0; i < 50; i++)); do   # up to 5 s; LocalStack needs about 1 s
        left=0
        for g; do if _emu_group_alive "$g"; then left=1; fi; done
        [[ $left == 1 ]] || return 0
        sleep 0.1
    done
    for g; do kill -KILL -- "-$g" 2>/dev/null || true; done
    return 0
}

emulators_stop() {
    local run=$_EMU_RUN_DIR pid name groups=()
    [[ -n $run ]] || return 0   # never started, or already stopped
    _EMU_RUN_DIR=""
    # The watchdog goes first, so it cannot race us; then the emulators. Only pids
    # from our own run dir are signalled.
    if pid=$(_emu_pid "$run" watchdog); then kill -KILL -- "-$pid" 2>/dev/null || true; fi
    for name in localstack moto; do
        if pid=$(_emu_pid "$run" "$name"); then groups+=("$pid"); fi
    done
    if ((${#groups[@]})); then _emu_stop_groups "${groups[@]}"; fi
    unset CM_LOCALSTACK_URL CM_MOTO_URL CM_EMULATOR_RUN_DIR CM_MOTO_PYTHON
    if [[ ${CM_KEEP_EMULATOR_LOGS:-0} == 1 ]]; then
        _emu_log "logs and data kept in $run"
    elif [[ -f $run/.cm-emulators ]]; then
        rm -rf "$run"
    fi
    return 0
}

# Standalone use.
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
    set -euo pipefail
    case "${1:-}" in
    install)
        emulators_install
        ;;
    run)
        trap emulators_stop EXIT
        trap 'exit 130' INT
        trap 'exit 143' TERM
        emulators_start
        echo "# emulators running; paste into another shell:"
        for v in AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_REGION AWS_DEFAULT_REGION AWS_CONFIG_FILE \
            AWS_SHARED_CREDENTIALS_FILE AWS_EC2_METADATA_DISABLED \
            AWS_ENDPOINT_URL_ROUTE_53 AWS_ENDPOINT_URL_CLOUDWATCH_LOGS AWS_ENDPOINT_URL_CLOUDWATCH \
            AWS_ENDPOINT_URL_SNS AWS_ENDPOINT_URL_SQS AWS_ENDPOINT_URL_AUTO_SCALING \
            AWS_ENDPOINT_URL_EC2 AWS_ENDPOINT_URL_ECS AWS_ENDPOINT_URL_EFS \
            AWS_ENDPOINT_URL_ELASTIC_LOAD_BALANCING_V2 AWS_ENDPOINT_URL_APPLICATION_AUTO_SCALING \
            AWS_ENDPOINT_URL_DYNAMODB AWS_ENDPOINT_URL_IAM AWS_ENDPOINT_URL_STS \
            AWS_ENDPOINT_URL_CLOUDFORMATION \
            CM_LOCALSTACK_URL CM_MOTO_URL CM_EMULATOR_RUN_DIR CM_MOTO_PYTHON; do
            printf 'export %s=%q\n' "$v" "${!v}"
        done
        echo "unset AWS_PROFILE AWS_SESSION_TOKEN AWS_ENDPOINT_URL"
        echo "# Ctrl-C stops them."
        # Run until interrupted, or until one emulator dies.
        while :; do
            for name in localstack moto; do
                pid=$(_emu_pid "$CM_EMULATOR_RUN_DIR" "$name") || pid=""
                if [[ -z $pid ]] || ! _emu_alive "$pid"; then
                    _emu_log "$name exited; last lines of its log:"
                    tail -n 40 "$CM_EMULATOR_RUN_DIR/$name.log" >&2 || true
                    exit 1
                fi
            done
            sleep 2
        done
        ;;
    *)
        echo "usage: bash $0 run|install   (or source it: see the top of the file)" >&2
        exit 2
        ;;
    esac
fi
