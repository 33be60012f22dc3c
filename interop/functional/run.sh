#!/usr/bin/env bash
# Swift 2.38.3's own functional tests (test/functional from its PyPI source
# distribution) through a real Swift proxy, with rowsync as the account and
# container servers. See interop/functional/README.md.
#
# Usage: run.sh [OPTIONS] [TEST ...] [-- PYTEST_ARGS ...]
#   TEST             pytest node ids under the unpacked suite, e.g.
#                    test/functional/test_container.py::TestContainer::test_POST_metadata
#                    (default: test/functional/test_account.py and
#                    test/functional/test_container.py; `all` = every file of
#                    test/functional but s3api/: tests.py and the middleware
#                    tests)
#   --servers MODE   which account/container servers the proxy talks to:
#                      rowsync            rowsync for both (default)
#                      rowsync-container  rowsync containers, Swift accounts
#                      rowsync-account    rowsync accounts, Swift containers
#                      swift              Swift for both: the control
#                      mixed              a Swift and a rowsync server of each
#                                         kind, holding different replicas of
#                                         the same rings (a rolling upgrade)
#   --swift-servers  the same as --servers swift
#   --replicas N     replicas (devices) of every ring (default 3)
#
# Environment:
#   FUNC_SERVERS       MODE as --servers
#   FUNC_TESTS         space-separated TESTs, as the arguments
#   FUNC_PYTEST_ARGS   extra pytest arguments (e.g. "-x -v")
#   ROWSYNC_BIN        rowsync binary (default: cargo build target/debug/rowsync)
#   FUNC_ROOT          cluster directory (default: a fresh mktemp -d in /dev/shm,
#                      else in $TMPDIR or /tmp; removed after the run)
#   FUNC_KEEP=1        keep the cluster directory (configs, DBs, logs) after the run
#   FUNC_COMPARE=0     skip the replica comparison after the tests (cluster.py
#                      compare: every DB's replicas must answer HEAD and GET
#                      alike; in mixed mode that is Swift against rowsync)
#   FUNC_COMPARE_MAX   differences printed by the comparison (default 20)
#   PYTHON             interpreter for the venv (default: python3.11, else python3)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
VENV="$HERE/.venv"
CACHE="$HERE/.cache"
SWIFT_PIN="2.38.3"
say() { echo "functional: $*" >&2; }

MODE="${FUNC_SERVERS:-rowsync}"
REPLICAS=3
TESTS=()
PYARGS=()
while [ $# -gt 0 ]; do
    case "$1" in
        --servers) MODE="${2:?--servers needs a mode}"; shift ;;
        --servers=*) MODE="${1#--servers=}" ;;
        --swift-servers) MODE=swift ;;
        --replicas) REPLICAS="${2:?--replicas needs a number}"; shift ;;
        -h|--help) sed -n '2,36p' "$0"; exit 0 ;;
        --) shift; PYARGS+=("$@"); break ;;
        -*) say "unknown option $1 (see --help)"; exit 2 ;;
        *) TESTS+=("$1") ;;
    esac
    shift
done
case "$MODE" in
    rowsync|rowsync-container|rowsync-account|swift|mixed) ;;
    *) say "unknown mode $MODE (rowsync, rowsync-container, rowsync-account, swift, mixed)"; exit 2 ;;
esac
if [ ${#TESTS[@]} -eq 0 ]; then
    if [ -n "${FUNC_TESTS:-}" ]; then
        read -r -a TESTS <<<"$FUNC_TESTS"
    else
        TESTS=(test/functional/test_account.py test/functional/test_container.py)
    fi
fi
if [ "${TESTS[*]}" = all ]; then
    TESTS=(test/functional --ignore=test/functional/s3api)
fi
if [ -n "${FUNC_PYTEST_ARGS:-}" ]; then
    read -r -a extra <<<"$FUNC_PYTEST_ARGS"
    PYARGS+=("${extra[@]}")
fi

# ---------------------------------------------------------------- the venv
venv_ok() {
    [ -x "$VENV/bin/python" ] && "$VENV/bin/python" - "$SWIFT_PIN" <<'EOF' >/dev/null 2>&1
import sys, importlib.metadata as m
assert m.version("swift") == sys.argv[1], m.version("swift")
import swift.proxy.server, swift.obj.server, swift.account.server
import swift.container.server, swiftclient, pytest
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
    say "creating $VENV with $PY: swift==$SWIFT_PIN, pytest, python-swiftclient"
    rm -rf "$VENV"
    if ! "$PY" -m venv "$VENV" >&2; then
        apt_install python3-venv
        rm -rf "$VENV"
        "$PY" -m venv "$VENV" >&2
    fi
    # Swift's own pins (interop/constraints.txt) plus the test tools'.
    "$VENV/bin/pip" install -q --disable-pip-version-check \
        -c "$REPO/interop/constraints.txt" -c "$HERE/constraints.txt" \
        "swift==$SWIFT_PIN" pytest python-swiftclient >&2
    if ! venv_ok; then
        # pyeclib ships wheels with liberasurecode inside; fall back to Debian's.
        apt_install liberasurecode1 liberasurecode-dev
        venv_ok || { say "swift==$SWIFT_PIN does not import in $VENV"; exit 2; }
    fi
fi
PYBIN="$VENV/bin/python"

# ---------------------------------------------- Swift's functional tests
# From the source distribution on PyPI (the wheel has no test/). The test/
# tree is copied out so that `import swift` finds the venv's Swift, not the
# sdist's swift/ beside it.
SDIST="$CACHE/swift-$SWIFT_PIN.tar.gz"
SUITE="$CACHE/suite-$SWIFT_PIN"
if [ ! -f "$SUITE/test/functional/__init__.py" ]; then
    mkdir -p "$CACHE"
    if [ ! -f "$SDIST" ]; then
        say "pip download --no-binary :all: swift==$SWIFT_PIN (source distribution)"
        "$VENV/bin/pip" download -q --disable-pip-version-check --no-deps \
            --no-binary :all: -d "$CACHE" "swift==$SWIFT_PIN" >&2
    fi
    rm -rf "$SUITE.tmp"
    mkdir -p "$SUITE.tmp"
    tar -xzf "$SDIST" -C "$SUITE.tmp" "swift-$SWIFT_PIN/test"
    mv "$SUITE.tmp/swift-$SWIFT_PIN/test" "$SUITE.tmp/test"
    rmdir "$SUITE.tmp/swift-$SWIFT_PIN"
    # tox.ini's [pytest] (addopts), without the cache dir in the tree
    printf '[pytest]\naddopts = -p no:requests_mock -p no:cacheprovider -r fE\n' \
        >"$SUITE.tmp/pytest.ini"
    rm -rf "$SUITE"
    mv "$SUITE.tmp" "$SUITE"
fi

# ----------------------------------------------------------------- rowsync
if [ "$MODE" != swift ]; then
    if [ -z "${ROWSYNC_BIN:-}" ]; then
        TARGET="${CARGO_TARGET_DIR:-$REPO/target}"
        say "cargo build --bin rowsync (target $TARGET)"
        (cd "$REPO" && cargo build -q -j "${CARGO_BUILD_JOBS:-2}" --bin rowsync >&2)
        ROWSYNC_BIN="$TARGET/debug/rowsync"
    fi
    [ -x "$ROWSYNC_BIN" ] || { say "no rowsync binary at $ROWSYNC_BIN"; exit 2; }
fi

# --------------------------------------------------------------- processes
# Swift's object server keeps an object's metadata in xattrs, ~10 KB of
# them in the tests' metadata-limit cases: ext4 gives a file one 4 KB block
# (ENOSPC, and the error, logged from a tpool thread, then hangs the object
# server). tmpfs (/dev/shm) takes them, as SAIO's XFS does.
xattrs_ok() {
    "$PYBIN" - "$1" <<'EOF' >/dev/null 2>&1
import os, sys, tempfile, xattr
fd, path = tempfile.mkstemp(dir=sys.argv[1])
try:
    for i in range(40):
        xattr.setxattr(fd, ('user.swift.metadata%d' % i).encode(), b'x' * 254)
finally:
    os.close(fd)
    os.unlink(path)
EOF
}
if [ -n "${FUNC_ROOT:-}" ]; then
    ROOT="$FUNC_ROOT"; mkdir -p "$ROOT"
else
    PARENT="${TMPDIR:-/tmp}"
    if [ -d /dev/shm ] && [ -w /dev/shm ] && xattrs_ok /dev/shm; then
        PARENT=/dev/shm
    fi
    ROOT="$(mktemp -d "$PARENT/rowsync-functional.XXXXXX")"
fi
xattrs_ok "$ROOT" || say "warning: $ROOT takes no 10 KB of xattrs per file: object tests with much metadata will fail (ENOSPC)"
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
    if [ "${FUNC_KEEP:-}" = 1 ] || [ -n "${FUNC_ROOT:-}" ]; then
        say "cluster kept in $ROOT (logs in $ROOT/logs)"
    else
        if [ $rc -ne 0 ] && [ -d "$ROOT/logs" ]; then
            say "failed: tail of the server logs follows (FUNC_KEEP=1 keeps them)"
            for f in "$ROOT"/logs/*.log; do
                [ -f "$f" ] || continue
                echo "----- $f" >&2
                tail -n 30 "$f" >&2
            done
        fi
        rm -rf "$ROOT"
    fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

say "mode $MODE; cluster in $ROOT"
LAYOUT="$("$PYBIN" "$HERE/cluster.py" setup "$ROOT" --mode "$MODE" --replicas "$REPLICAS")"
SWIFT_DIR="$ROOT/etc"

PIDLIST=""
while read -r kind name port conf; do
    log="$ROOT/logs/$name.log"
    case "$kind" in
        swift)
            # mixed mode names Swift's servers account-server-swift, ...
            PYTHONPATH="$HERE" "$PYBIN" "$HERE/cluster.py" swift "$SWIFT_DIR" "${name%-swift}" "$conf" \
                >"$log" 2>&1 &
            ;;
        rowsync)
            NO_COLOR=1 "$ROWSYNC_BIN" server --config "$conf" \
                --swift-conf "$SWIFT_DIR/swift.conf" >"$log" 2>&1 &
            ;;
        *) say "unknown process kind $kind"; exit 2 ;;
    esac
    PIDS+=($!)
    NAMES+=("$name")
    PIDLIST="$PIDLIST$name=$!,"
    say "started $kind $name (pid $!) on 127.0.0.1:$port"
done <<<"$LAYOUT"

"$PYBIN" "$HERE/cluster.py" wait "$ROOT" --pids "$PIDLIST" --timeout 60
"$PYBIN" "$HERE/cluster.py" accounts "$ROOT"

# In the background so that a TERM to this script is acted on at once
# (bash runs traps only after a foreground child ends).
say "pytest ${TESTS[*]} ${PYARGS[*]}"
START=$SECONDS
set +e
(
    cd "$SUITE" &&
    exec env SWIFT_TEST_CONFIG_FILE="$ROOT/test.conf" SWIFT_TEST_IN_PROCESS=false \
        "$PYBIN" -m pytest -q "${TESTS[@]}" "${PYARGS[@]}"
) &
PIDS+=($!)
NAMES+=(pytest)
wait $!
rc=$?
set -e
say "mode $MODE: pytest exit $rc after $((SECONDS - START)) s"
while read -r kind name count statuses; do
    say "$kind $name served $count requests: $statuses"
    if [ "$kind" = rowsync ] && [ "$count" = 0 ]; then
        say "rowsync $name served nothing: the tests did not go through rowsync"
        [ $rc -eq 0 ] && rc=1
    fi
done < <("$PYBIN" "$HERE/cluster.py" hits "$ROOT")
# The replicas of every DB answer alike (in mixed mode: Swift's and
# rowsync's servers on the same data).
if [ "${FUNC_COMPARE:-1}" = 1 ]; then
    "$PYBIN" "$HERE/cluster.py" compare "$ROOT" --max "${FUNC_COMPARE_MAX:-20}" >&2 || { [ $rc -eq 0 ] && rc=1; }
fi
exit $rc
