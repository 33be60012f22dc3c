#!/usr/bin/env bash
# Interop harness: Swift 2.38.3 (Python, from PyPI) and rowsync in one
# cluster on 127.0.0.1 (container and account servers on every node; the
# account scenarios are named acct_*), then the switch-over procedure
# (switchover.py: one node of a Swift cluster of its own switched to rowsync
# and back). See interop/README.md.
#
# Environment:
#   ROWSYNC_BIN        rowsync binary to test (default: build target/debug/rowsync)
#   INTEROP_ROOT       cluster directory (default: a fresh mktemp -d, removed after)
#   INTEROP_KEEP=1     keep the cluster directory (logs, DBs) after the run
#   INTEROP_ONLY       comma-separated substrings: run only matching scenarios
#                      (INTEROP_ONLY=acct_: the account scenarios only); the
#                      switch-over runs when it is empty or contains
#                      `switchover` (INTEROP_ONLY=switchover: only that)
#   INTEROP_VERBOSE=1  print the driver's progress lines
#   PYTHON             interpreter for the venv (default: python3.11, else python3)
#
# Options:
#   --bench            run the side-by-side benchmark instead of the scenarios
#                      (Swift's replicator and servers against rowsync's, same
#                      workloads; builds target/release/rowsync unless
#                      ROWSYNC_BIN is given) and print a table
#   --scale F          benchmark sizes times F (default 1: 100,000-row DBs)
#   --out FILE         also write the benchmark table (markdown) to FILE
set -euo pipefail

BENCH=""
SCALE=1
OUT=""
while [ $# -gt 0 ]; do
    case "$1" in
        --bench) BENCH=1 ;;
        --scale) SCALE="${2:?--scale needs a number}"; shift ;;
        --out) OUT="$(cd "$(dirname "${2:?--out needs a file}")" && pwd)/$(basename "$2")"; shift ;;
        -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
        *) echo "interop: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
VENV="$HERE/.venv"
SWIFT_PIN="2.38.3"
say() { echo "interop: $*" >&2; }

# ---------------------------------------------------------------- the venv
venv_ok() {
    [ -x "$VENV/bin/python" ] && "$VENV/bin/python" - "$SWIFT_PIN" <<'EOF' >/dev/null 2>&1
import sys, importlib.metadata as m
assert m.version("swift") == sys.argv[1], m.version("swift")
import swift.container.server, swift.container.replicator, swift.cli.info
import swift.account.server, swift.account.replicator
EOF
}

apt_updated=""
apt_install() {
    if [ -z "$apt_updated" ]; then
        say "apt-get update"
        apt-get update -qq >&2
        apt_updated=1
    fi
    say "apt-get install $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2
}

if ! venv_ok; then
    PY="${PYTHON:-}"
    if [ -z "$PY" ]; then
        if command -v python3.11 >/dev/null 2>&1; then PY=python3.11; else PY=python3; fi
    fi
    say "creating $VENV with $PY and swift==$SWIFT_PIN"
    rm -rf "$VENV"
    if ! "$PY" -m venv "$VENV" >&2; then
        apt_install python3-venv
        rm -rf "$VENV"
        "$PY" -m venv "$VENV" >&2
    fi
    "$VENV/bin/pip" install -q --disable-pip-version-check \
        -c "$HERE/constraints.txt" "swift==$SWIFT_PIN" >&2
    if ! venv_ok; then
        # pyeclib ships wheels with liberasurecode inside; fall back to Debian's.
        apt_install liberasurecode1 liberasurecode-dev
        venv_ok || { say "swift==$SWIFT_PIN does not import in $VENV"; exit 2; }
    fi
fi
PYBIN="$VENV/bin/python"

# ------------------------------------------------------------------- rsync
command -v rsync >/dev/null 2>&1 || apt_install rsync

# ----------------------------------------------------------------- rowsync
if [ -z "${ROWSYNC_BIN:-}" ]; then
    TARGET="${CARGO_TARGET_DIR:-$REPO/target}"
    if [ -n "$BENCH" ]; then
        say "cargo build --release --bin rowsync (target $TARGET)"
        (cd "$REPO" && cargo build -q --release -j "${CARGO_BUILD_JOBS:-2}" --bin rowsync >&2)
        ROWSYNC_BIN="$TARGET/release/rowsync"
    else
        say "cargo build --bin rowsync (target $TARGET)"
        (cd "$REPO" && cargo build -q -j "${CARGO_BUILD_JOBS:-2}" --bin rowsync >&2)
        ROWSYNC_BIN="$TARGET/debug/rowsync"
    fi
fi
[ -x "$ROWSYNC_BIN" ] || { say "no rowsync binary at $ROWSYNC_BIN"; exit 2; }

# ------------------------------------------------------------ what runs
# The scenarios (driver.py run), then the switch-over procedure
# (switchover.py, in <cluster>/switchover, a cluster of its own). The
# scenarios' cluster is not set up when INTEROP_ONLY asks for the
# switch-over and names no scenario.
MAIN=1
SWITCHOVER=""
if [ -z "$BENCH" ]; then
    case ",${INTEROP_ONLY:-switchover}," in *switchover*) SWITCHOVER=1 ;; esac
fi
if [ -n "$SWITCHOVER" ] && [ -n "${INTEROP_ONLY:-}" ]; then
    MAIN=""
    names="$("$PYBIN" "$HERE/driver.py" list)"
    IFS=',' read -r -a only <<<"$INTEROP_ONLY"
    for o in "${only[@]}"; do
        if [ -n "$o" ] && grep -qF -- "$o" <<<"$names"; then MAIN=1; fi
    done
fi

# --------------------------------------------------------------- processes
if [ -n "${INTEROP_ROOT:-}" ]; then
    ROOT="$INTEROP_ROOT"; mkdir -p "$ROOT"
else
    ROOT="$(mktemp -d -t rowsync-interop.XXXXXX)"
fi
PIDS=()
NAMES=()

cleanup() {
    local rc=$?
    set +e
    local i
    for i in "${!PIDS[@]}"; do
        kill -TERM "${PIDS[$i]}" 2>/dev/null
    done
    # bounded wait (10 s), then SIGKILL what is left
    local n=0 alive
    while [ $n -lt 50 ]; do
        alive=0
        for i in "${!PIDS[@]}"; do
            kill -0 "${PIDS[$i]}" 2>/dev/null && alive=1
        done
        [ $alive -eq 0 ] && break
        sleep 0.2
        n=$((n + 1))
    done
    for i in "${!PIDS[@]}"; do
        if kill -0 "${PIDS[$i]}" 2>/dev/null; then
            say "${NAMES[$i]} (pid ${PIDS[$i]}) ignored SIGTERM; SIGKILL"
            kill -KILL "${PIDS[$i]}" 2>/dev/null
        fi
        wait "${PIDS[$i]}" 2>/dev/null
    done
    if [ "${INTEROP_KEEP:-}" = 1 ] || [ -n "${INTEROP_ROOT:-}" ]; then
        say "cluster kept in $ROOT (logs in $ROOT/logs)"
    else
        if [ $rc -ne 0 ] && { [ -d "$ROOT/logs" ] || [ -d "$ROOT/switchover/logs" ]; }; then
            say "failed: tail of the logs follows (INTEROP_KEEP=1 keeps them)"
            for f in "$ROOT"/logs/*.log "$ROOT"/switchover/logs/*.log; do
                [ -f "$f" ] || continue
                echo "----- $f" >&2
                tail -n 40 "$f" >&2
            done
        fi
        rm -rf "$ROOT"
    fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

say "cluster in $ROOT"
if [ -n "$MAIN" ]; then  # the scenarios' cluster and run, to `fi  # MAIN`
SETUP_ARGS=()
[ -n "$BENCH" ] && SETUP_ARGS+=(--bench)
LAYOUT="$("$PYBIN" "$HERE/driver.py" setup "$ROOT" --rowsync-bin "$ROWSYNC_BIN" "${SETUP_ARGS[@]}")"
SWIFT_DIR="$ROOT/etc"

while read -r kind name port conf; do
    log="$ROOT/logs/$name.log"
    case "$kind" in
        rsyncd)
            rsync --daemon --no-detach --config="$conf" --port="$port" \
                --address=127.0.0.1 >"$log" 2>&1 &
            ;;
        swift)
            "$PYBIN" "$HERE/driver.py" swift "$SWIFT_DIR" container-server "$conf" \
                >"$log" 2>&1 &
            ;;
        rowsync)
            NO_COLOR=1 "$ROWSYNC_BIN" server --config "$conf" --swift-conf "$SWIFT_DIR/swift.conf" \
                >"$log" 2>&1 &
            ;;
        swift-account)
            "$PYBIN" "$HERE/driver.py" swift "$SWIFT_DIR" account-server "$conf" \
                >"$log" 2>&1 &
            ;;
        rowsync-account)
            NO_COLOR=1 "$ROWSYNC_BIN" server --kind account --config "$conf" \
                --swift-conf "$SWIFT_DIR/swift.conf" >"$log" 2>&1 &
            ;;
        *) say "unknown process kind $kind"; exit 2 ;;
    esac
    PIDS+=($!)
    NAMES+=("$name")
    say "started $kind $name (pid $!) on 127.0.0.1:$port"
done <<<"$LAYOUT"

"$PYBIN" "$HERE/driver.py" wait "$ROOT" --timeout 60 >&2

RUN_ARGS=()
if [ -n "${INTEROP_ONLY:-}" ]; then
    IFS=',' read -r -a only <<<"$INTEROP_ONLY"
    for o in "${only[@]}"; do RUN_ARGS+=(--only "$o"); done
fi
[ "${INTEROP_VERBOSE:-}" = 1 ] && RUN_ARGS+=(-v)

# In the background so that a TERM to this script is acted on at once
# (bash runs traps only after a foreground child ends); the driver kills
# its own replicator child on TERM.
set +e
if [ -n "$BENCH" ]; then
    [ -n "$OUT" ] && RUN_ARGS+=(--out "$OUT")
    "$PYBIN" "$HERE/driver.py" bench "$ROOT" --scale "$SCALE" "${RUN_ARGS[@]}" &
else
    "$PYBIN" "$HERE/driver.py" run "$ROOT" --counts "$ROOT/scenarios.counts" "${RUN_ARGS[@]}" &
fi
PIDS+=($!)
NAMES+=(driver)
wait $!
rc=$?
set -e
fi  # MAIN

# ------------------------------------------------------------ switch-over
# Its own 3-node Swift cluster (servers, replicators and rsync daemon
# started and stopped by switchover.py, by PID); node3 goes to rowsync and
# back. Its PASS/FAIL lines count into the exit status.
if [ -n "$SWITCHOVER" ]; then
    [ -n "$MAIN" ] || rc=0
    SO_ARGS=()
    [ "${INTEROP_VERBOSE:-}" = 1 ] && SO_ARGS+=(-v)
    say "switch-over procedure in $ROOT/switchover"
    set +e
    "$PYBIN" "$HERE/switchover.py" "$ROOT/switchover" --rowsync-bin "$ROWSYNC_BIN" \
        --counts "$ROOT/switchover.counts" "${SO_ARGS[@]}" &
    PIDS+=($!)
    NAMES+=(switchover)
    wait $!
    src=$?
    set -e
    [ $rc -eq 0 ] && rc=$src
    if [ -n "$MAIN" ] && [ -f "$ROOT/scenarios.counts" ] && [ -f "$ROOT/switchover.counts" ]; then
        read -r p1 f1 s1 <"$ROOT/scenarios.counts"
        read -r p2 f2 s2 <"$ROOT/switchover.counts"
        line="total: $((p1 + p2)) passed, $((f1 + f2)) failed"
        [ $((s1 + s2)) -gt 0 ] && line="$line, $((s1 + s2)) skipped"
        echo "$line"
    fi
fi
exit $rc
