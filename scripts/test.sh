#!/usr/bin/env bash
# The README's test command: installs what is missing, builds with warnings as
# errors, runs every test, then builds again under AddressSanitizer and
# UndefinedBehaviorSanitizer and runs the unit and integration tests there.
# First it checks that the C++ sources are formatted (scripts/check-format.sh).
# Then the Raspberry Pi builds (arm64, armhf; scripts/setup-cross.sh installs their
# compilers, qemu-user and libraries): cross-compiled while the native tests run,
# then their unit tests, the programs' ELF check and an end-to-end run under qemu-user,
# beside the sanitizer tests. Each step prints the time since the start.
#   scripts/test.sh            everything (what CI runs)
#   scripts/test.sh -L unit    only tests with that label (passed to ctest)
#   FIELDLINK_CROSS="arm64"    only these Pi builds ("" for none; default "arm64 armhf")
set -euo pipefail
cd "$(dirname "$0")/.."

export FIELDLINK_TEST_START=${FIELDLINK_TEST_START:-$(date +%s)}
elapsed() {  # since the start, for CI's time budget
  local s=$(($(date +%s) - FIELDLINK_TEST_START))
  printf '%dm%02ds' $((s / 60)) $((s % 60))
}

cross=${FIELDLINK_CROSS-arm64 armhf}
scripts/setup.sh
# shellcheck disable=SC2086  # one word per architecture
[ -z "$cross" ] || scripts/setup-cross.sh $cross
scripts/check-format.sh
echo "== set up at $(elapsed)"

jobs=$(nproc 2>/dev/null || echo 2)

run_build() {  # name, extra cmake args...
  local dir="build/$1"; shift
  echo "== configure $dir"
  cmake -S . -B "$dir" -G Ninja -DFIELDLINK_WERROR=ON "$@" >"$dir.configure.log" 2>&1 \
    || { cat "$dir.configure.log"; exit 1; }
  echo "== build $dir at $(elapsed)"
  cmake --build "$dir" -j "$jobs"
}

toolchain_of() {
  case "$1" in arm64) echo "$PWD/toolchains/aarch64-linux-gnu.cmake" ;; armhf) echo "$PWD/toolchains/arm-linux-gnueabihf.cmake" ;; esac
}

mkdir -p build
# The benchmark programs are built (not run) so that CI keeps them compiling.
run_build ci -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFIELDLINK_BUILD_BENCH=ON

# The Pi builds compile at low priority while the native tests (mostly waiting on
# processes and sockets) run; -O2 as RelWithDebInfo, but without debug info (faster to build).
# They and the sanitizer build are unity builds (several sources per compiler run: less time in
# the same headers); the native build compiles each source alone, as a user's build does.
unity=-DCMAKE_UNITY_BUILD=ON
cross_pid=""
if [ -n "$cross" ]; then
  (
    for arch in $cross; do
      nice -n 15 bash -c "$(declare -f run_build elapsed); jobs=$jobs; run_build pi-$arch \
        -DCMAKE_TOOLCHAIN_FILE=$(toolchain_of "$arch") -DCMAKE_BUILD_TYPE=RelWithDebInfo $unity \
        '-DCMAKE_C_FLAGS_RELWITHDEBINFO=-O2 -DNDEBUG' '-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O2 -DNDEBUG'" || exit 1
    done
  ) >build/pi.build.log 2>&1 &
  cross_pid=$!
  trap 'kill "$cross_pid" 2>/dev/null || true' EXIT
fi

echo "== test build/ci at $(elapsed)"
ctest --test-dir build/ci --output-on-failure -j "$jobs" "$@"

if [ -n "$cross_pid" ]; then
  echo "== waiting for the Pi builds ($cross) at $(elapsed)"
  wait "$cross_pid" || { tail -n 100 build/pi.build.log; echo "the Pi builds failed (build/pi.build.log)"; exit 1; }
fi

run_build asan -DCMAKE_BUILD_TYPE=Debug -DFIELDLINK_SANITIZE=address,undefined "$unity"

# The emulated tests (busy cores under qemu) run beside the sanitizer tests (mostly waiting on
# processes and sockets); their output follows once both are done.
pi_tests_pid=""
if [ -n "$cross" ]; then
  (
    failed=0
    for arch in $cross; do
      echo "== test build/pi-$arch (under qemu-user, beside the sanitizer tests)"
      ctest --test-dir "build/pi-$arch" --output-on-failure -j "$jobs" -L 'unit|target' "$@" || failed=1
    done
    exit "$failed"
  ) >build/pi.test.log 2>&1 &
  pi_tests_pid=$!
  trap 'kill "$pi_tests_pid" 2>/dev/null || true' EXIT
fi

echo "== test build/asan (sanitizers) at $(elapsed)"
asan_failed=0
ctest --test-dir build/asan --output-on-failure -j "$jobs" -L 'unit|integration' "$@" || asan_failed=1

pi_failed=0
if [ -n "$pi_tests_pid" ]; then
  wait "$pi_tests_pid" || pi_failed=1
  cat build/pi.test.log
fi
echo "== done at $(elapsed)"
[ "$asan_failed" -eq 0 ] || { echo "the sanitizer tests failed (above)"; exit 1; }
[ "$pi_failed" -eq 0 ] || { echo "the Pi tests failed (build/pi.test.log, above)"; exit 1; }
