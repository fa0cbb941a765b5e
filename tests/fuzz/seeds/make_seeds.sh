#!/usr/bin/env bash
# Regenerates every seed corpus of tests/fuzz/corpus/, the regression seeds
# of the findings (regression-*) included: make_seeds.py for the text and
# packet targets, make_spool_seeds.cpp (built here against the real spool) for
# the spool. Deterministic.
#   tests/fuzz/seeds/make_seeds.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../../.." && pwd)
python3 "$here/make_seeds.py" "$src"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"${CXX:-c++}" -std=c++20 -O1 -I"$src/tests/fuzz" -I"$src/firmware/spool/include" -I"$src/firmware/spool/src" \
  -I"$src/firmware/hal/include" -I"$src/firmware/reader_store/include" -I"$src/protocol/include" \
  "$here/make_spool_seeds.cpp" "$src"/firmware/spool/src/*.cpp "$src"/protocol/src/*.cpp -o "$tmp/make_spool_seeds"
mkdir -p "$src/tests/fuzz/corpus/spool"
"$tmp/make_spool_seeds" "$src/tests/fuzz/corpus/spool"
for dir in "$src"/tests/fuzz/corpus/*/; do
  echo "$(basename "$dir"): $(ls "$dir" | wc -l) seeds, $(du -sb "$dir" | cut -f1) bytes"
done
