#!/usr/bin/env bash
# Builds stp and runs every test stage:
#   1. packages (scripts/deps.sh)
#   2. build/        gcc, -Dfuzz=false: unit + fuzz-replay tests, then the
#                    end-to-end tests (tests/integration) against its stpd
#   3. build-asan/   ASan + UBSan: unit + fuzz-replay tests and end-to-end tests again
#   4. build-fuzz/   clang libFuzzer targets: must compile
# Every stage runs even when an earlier one failed (unless it needs that
# one's binary). The last line is exactly "N passed, M failed"; the exit
# status is non-zero when anything failed. A build counts as one check.
#
# BUILD_PREFIX=dir changes the build directory names (default "build").
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD
PY=/usr/bin/python3
B=${BUILD_PREFIX:-build}
PASSED=0
FAILED=0
SUMMARY=()

note() { printf '\n==== %s\n' "$*"; }
count() { # count LABEL PASSED FAILED
	PASSED=$((PASSED + $2))
	FAILED=$((FAILED + $3))
	SUMMARY+=("$(printf '%-34s %4d passed, %d failed' "$1" "$2" "$3")")
}

# step LABEL CMD...: one check that passes when CMD exits 0.
step() {
	local label=$1
	shift
	note "$label: $*"
	if "$@"; then
		count "$label" 1 0
		return 0
	fi
	count "$label" 0 1
	return 1
}

# meson_tests LABEL BUILDDIR [meson test args...]: counts every test from
# meson's JSON test log (OK and EXPECTEDFAIL pass; the rest but SKIP fail).
meson_tests() {
	local label=$1 dir=$2
	shift 2
	note "$label: meson test -C $dir $*"
	rm -f "$dir/meson-logs/testlog.json"
	meson test -C "$dir" --print-errorlogs "$@"
	local rc=$?
	local counts
	counts=$("$PY" - "$dir/meson-logs/testlog.json" <<'EOF'
import json, sys
ok = bad = 0
try:
    with open(sys.argv[1]) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            r = json.loads(line).get("result")
            if r in ("OK", "EXPECTEDFAIL"):
                ok += 1
            elif r != "SKIP":
                bad += 1
except OSError:
    pass
print(ok, bad)
EOF
)
	local ok bad
	read -r ok bad <<<"$counts"
	if [ "$rc" -ne 0 ] && [ "$bad" -eq 0 ]; then
		bad=1 # meson itself failed (no test ran, bad suite, ...)
	fi
	count "$label" "$ok" "$bad"
}

# pytest_stage LABEL STPD_BINARY [TESTDIR]: end-to-end tests against that
# stpd (TESTDIR defaults to tests/integration).
pytest_stage() {
	local label=$1 stpd=$2 tests=${3:-tests/integration}
	local xml="$ROOT/$B/pytest-${label//[^a-zA-Z0-9]/_}.xml"
	note "$label: pytest $tests (STPD=$stpd)"
	rm -f "$xml"
	STPD="$stpd" STP_TEST_SERVER=stpd timeout 1500 \
		"$PY" -m pytest -q -rfEs --junitxml="$xml" "$tests"
	local rc=$?
	local counts
	counts=$("$PY" - "$xml" <<'EOF'
import sys
import xml.etree.ElementTree as ET
try:
    root = ET.parse(sys.argv[1]).getroot()
except (OSError, ET.ParseError):
    print("0 0 0")
    sys.exit()
# One verdict per test: a test that failed and also errored in teardown
# counts once.
verdict = {}
for tc in root.iter("testcase"):
    key = (tc.get("classname"), tc.get("name"))
    if tc.find("failure") is not None or tc.find("error") is not None:
        verdict[key] = "fail"
    elif tc.find("skipped") is not None:
        verdict.setdefault(key, "skip")
    else:
        verdict.setdefault(key, "pass")
v = list(verdict.values())
print(v.count("pass"), v.count("fail"), v.count("skip"))
EOF
)
	local ok bad skipped
	read -r ok bad skipped <<<"$counts"
	if [ "$rc" -ne 0 ] && [ "$bad" -eq 0 ]; then
		bad=1 # pytest crashed, timed out or collected nothing
	fi
	[ "$skipped" -eq 0 ] || echo "($label: $skipped skipped)"
	count "$label" "$ok" "$bad"
}

setup_or_reconfigure() { # DIR ARGS...
	local dir=$1
	shift
	if [ -f "$dir/build.ninja" ]; then
		meson configure "$dir" "$@"
	else
		meson setup "$dir" "$@"
	fi
}

START=$(date +%s)
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

step "deps" bash scripts/deps.sh

# ---- 2. plain build
if step "build ($B)" bash -c "$(declare -f setup_or_reconfigure); \
		setup_or_reconfigure '$B' -Dfuzz=false && ninja -C '$B'"; then
	meson_tests "unit+fuzz-replay ($B)" "$B" --suite unit --suite fuzz-replay
	pytest_stage "integration ($B)" "$ROOT/$B/src/server/stpd"
	# Multi-host tests (multicast, DNS leak) in namespaces they create.
	pytest_stage "netns ($B)" "$ROOT/$B/src/server/stpd" tests/netns
fi

# ---- 3. ASan + UBSan
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
# An ASan-built LD_PRELOAD library cannot go into programs built without
# ASan: the stpify tests of this stage use the plain build's stpify.
export STPIFY="$ROOT/$B/src/shim/stpify"
if step "build ($B-asan)" bash -c "$(declare -f setup_or_reconfigure); \
		setup_or_reconfigure '$B-asan' -Dfuzz=false -Db_sanitize=address,undefined \
		-Db_lundef=false && ninja -C '$B-asan'"; then
	# fuzz-replay too: crashers of memory bugs (NO_PROXY "a b") only
	# fail where ASan watches.
	meson_tests "unit+fuzz-replay ($B-asan)" "$B-asan" --suite unit --suite fuzz-replay
	pytest_stage "integration ($B-asan)" "$ROOT/$B-asan/src/server/stpd"
fi
unset ASAN_OPTIONS UBSAN_OPTIONS STPIFY

# ---- every bench mode once against the plain stpd: completes, no errors (no
# timing). Last of the runtime stages: its connection bursts leave many
# TIME_WAIT sockets behind that earlier stages would trip over.
if [ -x "$B/src/server/stpd" ]; then
	meson_tests "bench smoke ($B)" "$B" --suite bench
fi

# ---- 4. libFuzzer targets
if [ -f "$B-fuzz/build.ninja" ]; then
	step "build ($B-fuzz, clang)" ninja -C "$B-fuzz"
else
	step "build ($B-fuzz, clang)" env CC=clang bash -c \
		"meson setup '$B-fuzz' -Dfuzz=true && ninja -C '$B-fuzz'"
fi

note "summary ($(($(date +%s) - START)) s)"
printf '%s\n' "${SUMMARY[@]}"
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
