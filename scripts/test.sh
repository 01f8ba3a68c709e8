#!/usr/bin/env bash
# Builds stp and runs every test stage:
#   1. packages (scripts/deps.sh)
#   2. build/        gcc, -Dfuzz=false: unit + fuzz-replay tests, then the
#                    end-to-end tests (tests/integration) against its stpd
#   3. build-asan/   ASan + UBSan: unit + fuzz-replay tests, end-to-end and
#                    multi-host tests again
#   4. build-noext/  every -Dext_*=false: unit tests, the
#                    protocol, build-option and broker end-to-end tests
#   5. build-fuzz/   clang libFuzzer targets: must compile
# Every stage runs even when an earlier one failed (unless it needs that
# one's binary). The last line is exactly "N passed, M failed, K skipped",
# below the list of skipped tests with their reasons; the exit status is
# non-zero when anything failed. A build counts as one check. A skip counts
# as skipped only when no package or set-up could avoid it (the list in
# scripts/testcount.py); any other skip (a missing package, not root, ...)
# counts as failed. A few end-to-end tests that fail are rerun once, alone
# (pytest_stage): passing then, they count as passed and are listed as FLAKY.
#
# BUILD_PREFIX=dir changes the build directory names (default "build").
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD
PY=/usr/bin/python3
B=${BUILD_PREFIX:-build}
PASSED=0
FAILED=0
SKIPPED=0
SUMMARY=()
SKIPS=$(mktemp)
trap 'rm -f "$SKIPS" "$FLAKY"' EXIT

note() { printf '\n==== %s\n' "$*"; }
count() { # count LABEL PASSED FAILED [SKIPPED]
	local skipped=${4:-0}
	PASSED=$((PASSED + $2))
	FAILED=$((FAILED + $3))
	SKIPPED=$((SKIPPED + skipped))
	SUMMARY+=("$(printf '%-34s %4d passed, %d failed, %d skipped' "$1" "$2" "$3" "$skipped")")
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
# meson's JSON test log (scripts/testcount.py: OK and EXPECTEDFAIL pass).
meson_tests() {
	local label=$1 dir=$2
	shift 2
	note "$label: meson test -C $dir $*"
	rm -f "$dir/meson-logs/testlog.json"
	meson test -C "$dir" --print-errorlogs "$@"
	local rc=$?
	local ok bad skipped
	read -r ok bad skipped < <("$PY" scripts/testcount.py meson "$label" \
		"$dir/meson-logs/testlog.json" "$SKIPS")
	if [ "$rc" -ne 0 ] && [ "${bad:-0}" -eq 0 ]; then
		bad=1 # meson itself failed (no test ran, bad suite, ...)
	fi
	count "$label" "${ok:-0}" "${bad:-1}" "${skipped:-0}"
}

# pytest_stage LABEL STPD_BINARY [TESTDIR]: end-to-end tests against that
# stpd (TESTDIR defaults to tests/integration). When 1 to RERUN_MAX tests
# fail, those run once more on their own: one that passes then counts as
# passed but is listed as flaky in the summary (its first failure stays in
# the log above); one that fails again counts as failed. More failures
# than that, or a crash of pytest itself, are not rerun.
RERUN_MAX=3
FLAKY=$(mktemp)
pytest_stage() {
	local label=$1 stpd=$2 tests=${3:-tests/integration}
	local xml="$ROOT/$B/pytest-${label//[^a-zA-Z0-9]/_}.xml"
	local out="${xml%.xml}.out"
	note "$label: pytest $tests (STPD=$stpd)"
	rm -f "$xml" "$xml.rerun"
	STPD="$stpd" STP_TEST_SERVER=stpd timeout 1500 \
		"$PY" -m pytest -q -rfEs --junitxml="$xml" "$tests" 2>&1 | tee "$out"
	local rc=${PIPESTATUS[0]}
	local again=()
	if [ "$rc" -eq 1 ]; then
		mapfile -t again < <(sed -n 's/^\(FAILED\|ERROR\) \([^ ]*\).*/\2/p' "$out" | sort -u)
	fi
	if [ "${#again[@]}" -ge 1 ] && [ "${#again[@]}" -le "$RERUN_MAX" ]; then
		note "$label: ${#again[@]} failed; once more on their own: ${again[*]}"
		STPD="$stpd" STP_TEST_SERVER=stpd timeout 600 \
			"$PY" -m pytest -q -rfEs --junitxml="$xml.rerun" "${again[@]}"
		rc=$?
	fi
	local ok bad skipped
	read -r ok bad skipped < <("$PY" scripts/testcount.py pytest "$label" "$xml" "$SKIPS" \
		"$xml.rerun" "$FLAKY")
	if [ "$rc" -ne 0 ] && [ "${bad:-0}" -eq 0 ]; then
		bad=1 # pytest crashed, timed out or collected nothing
	fi
	count "$label" "${ok:-0}" "${bad:-1}" "${skipped:-0}"
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
	# The multi-host tests too: compartments, tunnels, TRANSPARENT's
	# engines and the broker's namespaces under the sanitizers.
	pytest_stage "netns ($B-asan)" "$ROOT/$B-asan/src/server/stpd" tests/netns
fi
unset ASAN_OPTIONS UBSAN_OPTIONS STPIFY

# ---- 4. without the extensions (every meson option ext_*): the core
# builds and serves alone, and refuses configs that need what is left out.
if step "build ($B-noext)" bash -c "$(declare -f setup_or_reconfigure); \
		setup_or_reconfigure '$B-noext' -Dfuzz=false $(scripts/noext_options.sh) \
		&& ninja -C '$B-noext'"; then
	meson_tests "unit ($B-noext)" "$B-noext" --suite unit
	pytest_stage "protocol ($B-noext)" "$ROOT/$B-noext/src/server/stpd" \
		tests/integration/test_protocol.py
	pytest_stage "modules ($B-noext)" "$ROOT/$B-noext/src/server/stpd" \
		tests/integration/test_modules.py
	# The broker is the core's: reloads through it without any module.
	pytest_stage "broker ($B-noext)" "$ROOT/$B-noext/src/server/stpd" \
		tests/integration/test_broker.py
fi

# ---- the Debian package (debian/): built once from HEAD, its files checked,
# unpacked into a fresh root and run (tests/package).
if [ -x "$B/src/server/stpd" ]; then
	pytest_stage "package" "$ROOT/$B/src/server/stpd" tests/package
fi

# ---- every bench mode once against the plain stpd: completes, no errors (no
# timing). Last of the runtime stages: its connection bursts leave many
# TIME_WAIT sockets behind that earlier stages would trip over.
if [ -x "$B/src/server/stpd" ]; then
	meson_tests "bench smoke ($B)" "$B" --suite bench
fi

# ---- 5. libFuzzer targets
if [ -f "$B-fuzz/build.ninja" ]; then
	step "build ($B-fuzz, clang)" ninja -C "$B-fuzz"
else
	step "build ($B-fuzz, clang)" env CC=clang bash -c \
		"meson setup '$B-fuzz' -Dfuzz=true && ninja -C '$B-fuzz'"
fi

note "summary ($(($(date +%s) - START)) s)"
printf '%s\n' "${SUMMARY[@]}"
"$PY" scripts/testcount.py report "$SKIPS" "$FLAKY"
echo "$PASSED passed, $FAILED failed, $SKIPPED skipped"
[ "$FAILED" -eq 0 ]
