#!/usr/bin/env bash
# The README's test command: installs what is missing, builds with warnings as
# errors, runs every test, then builds again under AddressSanitizer and
# UndefinedBehaviorSanitizer and runs the unit and integration tests there.
# First it checks that the C++ sources are formatted (scripts/check-format.sh).
#   scripts/test.sh            everything (what CI runs)
#   scripts/test.sh -L unit    only tests with that label (passed to ctest)
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
scripts/check-format.sh

jobs=$(nproc 2>/dev/null || echo 2)

run_build() {  # name, extra cmake args...
  local dir="build/$1"; shift
  echo "== configure $dir"
  cmake -S . -B "$dir" -G Ninja -DFIELDLINK_WERROR=ON "$@" >"$dir.configure.log" 2>&1 \
    || { cat "$dir.configure.log"; exit 1; }
  echo "== build $dir"
  cmake --build "$dir" -j "$jobs"
}

mkdir -p build
# The benchmark programs are built (not run) so that CI keeps them compiling.
run_build ci -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFIELDLINK_BUILD_BENCH=ON
echo "== test build/ci"
ctest --test-dir build/ci --output-on-failure -j "$jobs" "$@"

run_build asan -DCMAKE_BUILD_TYPE=Debug -DFIELDLINK_SANITIZE=address,undefined
echo "== test build/asan (sanitizers)"
ctest --test-dir build/asan --output-on-failure -j "$jobs" -L 'unit|integration' "$@"
