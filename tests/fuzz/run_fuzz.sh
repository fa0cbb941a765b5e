#!/usr/bin/env bash
# Builds the protocol decoders with clang's libFuzzer, AddressSanitizer and
# UBSan and runs a fixed number of inputs from the seed corpus (no time limit,
# so the test is deterministic in what it may take; a crash fails it).
#   run_fuzz.sh SOURCE_ROOT WORK_DIR [RUNS]
set -euo pipefail
src=$1 work=$2 runs=${3:-2000000}
mkdir -p "$work/corpus"
cp "$src/tests/fuzz/corpus/"* "$work/corpus/"
clang++ -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
  -I"$src/protocol/include" "$src/tests/fuzz/fuzz_decode.cpp" \
  "$src/protocol/src/codec.cpp" "$src/protocol/src/topics.cpp" -o "$work/fuzz_decode"
cd "$work"
./fuzz_decode -runs="$runs" -seed=1 -max_len=9000 -print_final_stats=1 corpus
