#!/usr/bin/env bash
# Builds one libFuzzer target with clang++, AddressSanitizer and UBSan against
# the project's real sources, then runs a fixed number of inputs starting from
# its seed corpus: -seed=1 -runs=N, no time limit, so a run always does the
# same amount of work (the inputs themselves can differ a little from run to
# run: libFuzzer also learns from compared values, addresses among them). A
# crash, leak, UB report, hang or failed invariant fails it. docs/fuzzing.md
# describes every target.
#
#   run_fuzz.sh TARGET SOURCE_ROOT WORK_DIR RUNS [extra libFuzzer flags...]
#   run_fuzz.sh --list              the targets
#   run_fuzz.sh --coverage TARGET SOURCE_ROOT WORK_DIR [CORPUS_DIR...]
#       line and branch coverage of the project's sources by the seeds and the
#       given corpora (e.g. a long run's runs/<target>/long/corpus), measured
#       with clang's source-based coverage (llvm-profdata, llvm-cov)
#
# TARGET: protocol | mqtt | json_batch | spool | config | link.
# WORK_DIR gets obj/ (incremental: a source is recompiled only when it or a
# header it includes changed), the binary, corpus/ (inputs the run found,
# emptied at the start of every run) and artifacts/ (crashing inputs).
#
# The whole script is one function, called on the last line together with
# exit, so that bash has read all of it before it runs: editing this file
# cannot derail a run that is under way.
set -euo pipefail

main() {

  targets=(protocol mqtt json_batch spool config link)
  if [[ ${1:-} == --list ]]; then
    printf '%s\n' "${targets[@]}"
    exit 0
  fi
  local coverage=0
  if [[ ${1:-} == --coverage ]]; then
    coverage=1
    shift
    set -- "${@:1:3}" 0 "${@:4}"
  fi
  if [[ $# -lt 4 ]]; then
    echo "usage: run_fuzz.sh TARGET SOURCE_ROOT WORK_DIR RUNS [libFuzzer flags...]" >&2
    echo "       run_fuzz.sh --coverage TARGET SOURCE_ROOT WORK_DIR [CORPUS_DIR...]" >&2
    exit 2
  fi
  target=$1 src=$(cd "$2" && pwd) work=$3 runs=$4
  shift 4
  fuzz=$src/tests/fuzz

  # Per target: the sources it links (exactly the files of the libraries it
  # exercises; see each library's CMakeLists.txt), include folders, defines,
  # libraries, and the longest input worth trying.
  freestanding=(-fno-exceptions -fno-rtti -fno-threadsafe-statics)  # as fieldlink_freestanding() builds firmware
  flags=() includes=() defines=() libs=() sources=()
  # Sources whose comparisons are not worth guiding the fuzzer (in the spool
  # target: the CRC loop, the byte layout whose CRCs and constants the harness
  # repairs itself, the RAM flash and the checks of the harness):
  # compiled without -fsanitize-coverage=trace-cmp, which otherwise costs most
  # of the time of every input. Their branches still count as coverage.
  quiet=()
  case $target in
    protocol)
      sources=("$fuzz/fuzz_protocol.cpp" "$src"/protocol/src/*.cpp)
      includes=("$src/protocol/include")
      flags=("${freestanding[@]}")
      max_len=9000
      ;;
    mqtt)
      sources=("$fuzz/fuzz_mqtt.cpp" "$src/firmware/core/src/mqtt_packet.cpp" "$src/firmware/core/src/mqtt_session.cpp")
      includes=("$src/firmware/core/include" "$src/firmware/hal/include")
      flags=("${freestanding[@]}")
      max_len=4096
      ;;
    json_batch)
      sources=("$fuzz/fuzz_json_batch.cpp" "$src/gateway/ingest/src/device_message_decoder.cpp" "$src"/protocol/src/*.cpp)
      includes=("$src/gateway/ingest/include" "$src/gateway/store/include" "$src/protocol/include")
      libs=(-lfmt)  # nlohmann-json is header-only
      max_len=4096
      ;;
    spool)
      sources=("$fuzz/fuzz_spool.cpp" "$src"/firmware/spool/src/*.cpp "$src"/protocol/src/*.cpp)
      quiet=("$fuzz/fuzz_spool.cpp" "$src/firmware/spool/src/spool_format.cpp" "$src"/protocol/src/*.cpp)
      # src/ for the spool's private on-flash format header, as tests/spool does.
      includes=("$fuzz" "$src/firmware/spool/include" "$src/firmware/spool/src" "$src/firmware/hal/include"
                "$src/firmware/reader_store/include" "$src/protocol/include")
      flags=("${freestanding[@]}")
      max_len=4096
      ;;
    link)
      # The serial link's frames and session; protocol/ only for crc32.
      sources=("$fuzz/fuzz_link.cpp" "$src"/firmware/link/src/frame.cpp "$src"/firmware/link/src/session.cpp
               "$src"/protocol/src/*.cpp)
      includes=("$src/firmware/link/include" "$src/protocol/include")
      flags=("${freestanding[@]}")
      max_len=4098  # two control bytes and a 4096-byte stream (fuzz_link.cpp)
      ;;
    config)
      # config.cpp with the ingest sources it calls (log levels, broker URIs);
      # not the Paho or SQLite parts, which configuration parsing never reaches.
      sources=("$fuzz/fuzz_config.cpp" "$fuzz/toml_impl.cpp" "$src/gateway/app/src/config.cpp"
               "$src/gateway/ingest/src/log.cpp")
      if [[ -f $src/gateway/ingest/src/broker_uri.cpp ]]; then
        sources+=("$src/gateway/ingest/src/broker_uri.cpp")
      fi
      includes=("$src/gateway/app/include" "$src/gateway/ingest/include" "$src/gateway/store/include"
                "$src/protocol/include")
      # toml++ as a library, as the gateway links it (TOML_HEADER_ONLY=0), but
      # compiled from its headers into the fuzzer (toml_impl.cpp) so that the
      # parser is instrumented too. Debian's libtomlplusplus.so is the same 3.3.0
      # source built with NDEBUG, so toml++'s internal debug assertions are off
      # here as well (one fires on "[=", which the library then reports as a
      # parse error). CLI11 is header-only; fmt is the shared library.
      defines=(-DTOML_HEADER_ONLY=0 '-DTOML_ASSERT(expr)=static_assert(true)' '-DFIELDLINK_VERSION="fuzz"' -DFIELDLINK_HAVE_LIBSYSTEMD=0)
      # A known UB in toml++ itself (see the file) would stop every run at once.
      if [[ ${FIELDLINK_FUZZ_STRICT:-0} != 1 && $coverage == 0 ]]; then
        flags=(-fsanitize-ignorelist="$fuzz/ubsan_ignorelist.txt")
      fi
      libs=(-lfmt)
      max_len=10240  # the shipped config/gateway.toml is 8 KB
      ;;
    *)
      echo "run_fuzz.sh: unknown target '$target' (targets: ${targets[*]})" >&2
      exit 2
      ;;
  esac

  cxx=${FIELDLINK_FUZZ_CXX:-clang++}
  # The project's warning set (cmake/FieldlinkWarnings.cmake); fatal with
  # FIELDLINK_FUZZ_WERROR=1, which ctest passes when FIELDLINK_WERROR is on.
  warnings=(-Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wcast-align -Wimplicit-fallthrough
            -Wmissing-declarations)
  if [[ ${FIELDLINK_FUZZ_WERROR:-0} == 1 ]]; then warnings+=(-Werror); fi
  cxxflags=(-std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
            "${warnings[@]}" "${flags[@]}" "${defines[@]}")
  local objdir=obj binary_name=fuzz_$target
  if [[ $coverage == 1 ]]; then
    cxxflags=(-std=c++20 -g -O1 -fsanitize=fuzzer -fprofile-instr-generate -fcoverage-mapping
              "${warnings[@]}" "${flags[@]}" "${defines[@]}")
    objdir=obj-coverage binary_name=fuzz_${target}_coverage
  fi
  for dir in "${includes[@]}"; do cxxflags+=("-I$dir"); done

  mkdir -p "$work/$objdir" "$work/artifacts"
  work=$(cd "$work" && pwd)
  binary=$work/$binary_name
  start=$SECONDS

  # True when $1 (an object) is missing or older than anything in its .d file.
  stale() {
    local obj=$1 dep=${1%.o}.d file
    [[ -f $obj && -f $dep ]] || return 0
    for file in $(sed -e 's/^[^:]*://' -e 's/\\$//' "$dep"); do
      [[ -e $file && ! $file -nt $obj ]] || return 0
    done
    return 1
  }

  # Stale objects are compiled in parallel, FIELDLINK_FUZZ_JOBS at a time
  # (default: the number of cores); each job leaves its exit status beside it.
  local jobs=${FIELDLINK_FUZZ_JOBS:-$(nproc)} compiled=()
  objects=() relink=0
  for source in "${sources[@]}"; do
    [[ -f $source ]] || { echo "run_fuzz.sh: missing source $source" >&2; exit 1; }
    name=${source#"$src"/}
    obj=$work/$objdir/${name//\//_}.o
    objects+=("$obj")
    these=("${cxxflags[@]}")
    for q in "${quiet[@]}"; do
      if [[ $q == "$source" ]]; then these+=(-fno-sanitize-coverage=trace-cmp); fi
    done
    signature="$cxx ${these[*]}"
    if stale "$obj" || [[ ! -f $obj.cmd || $(cat "$obj.cmd") != "$signature" ]]; then
      echo "== compile $name"
      rm -f "$obj.cmd" "$obj.status"
      while (($(jobs -rp | wc -l) >= jobs)); do wait -n || true; done
      (
        if "$cxx" "${these[@]}" -MMD -MF "${obj%.o}.d" -c "$source" -o "$obj"; then
          printf '%s' "$signature" >"$obj.cmd"
          echo 0 >"$obj.status"
        else
          echo 1 >"$obj.status"
        fi
      ) &
      compiled+=("$obj")
      relink=1
    fi
  done
  wait
  for obj in "${compiled[@]}"; do
    if [[ $(cat "$obj.status" 2>/dev/null) != 0 ]]; then
      echo "run_fuzz.sh: compiling ${obj##*/} failed" >&2
      exit 1
    fi
  done
  if [[ $relink == 1 || ! -x $binary ]]; then
    echo "== link $binary_name"
    "$cxx" "${cxxflags[@]}" "${objects[@]}" "${libs[@]}" -o "$binary"
  fi
  build_s=$((SECONDS - start))

  if [[ $coverage == 1 ]]; then
    # Every input once (-runs=0), then a report on the project's own sources.
    local project=() source
    for source in "${sources[@]}"; do
      [[ $source == "$fuzz"/* ]] || project+=("$source")
    done
    rm -f "$work/coverage.profraw"
    mkdir -p "$work/coverage-scratch"
    LLVM_PROFILE_FILE=$work/coverage.profraw "$binary" -runs=0 -max_len="$max_len" \
      -artifact_prefix="$work/artifacts/" "$work/coverage-scratch" "$fuzz/corpus/$target" "$@" >"$work/coverage_run.log" 2>&1
    rm -rf "$work/coverage-scratch"
    llvm-profdata-14 merge -sparse "$work/coverage.profraw" -o "$work/coverage.profdata"
    llvm-cov-14 report "$binary" -instr-profile="$work/coverage.profdata" "${project[@]}"
    return 0
  fi

  # The run: a fresh output corpus each time (so that every run starts from
  # the same seeds), the committed seeds read-only beside it.
  seeds=$fuzz/corpus/$target
  dict=$fuzz/dict/$target.dict
  rm -rf "$work/corpus" "$work/artifacts"
  mkdir -p "$work/corpus" "$work/artifacts"
  args=(-seed=1 -runs="$runs" -max_len="$max_len" -timeout=10 -print_final_stats=1
        -artifact_prefix="$work/artifacts/")
  [[ -f $dict ]] && args+=(-dict="$dict")
  cd "$work"
  echo "== run fuzz_$target ${args[*]} $* corpus $seeds"
  run_start=$SECONDS
  set +e
  "$binary" "${args[@]}" "$@" corpus "$seeds" >"$work/last_run.log" 2>&1
  status=$?
  set -e
  # Everything but the per-input progress lines (those stay in last_run.log).
  grep -av -e '^#[0-9]*[[:space:]]*\(NEW\|REDUCE\|pulse\|RELOAD\)' -e '^[[:space:]]*NEW_FUNC' "$work/last_run.log" || true
  run_s=$((SECONDS - run_start))
  echo "== fuzz_$target: build ${build_s}s, run ${run_s}s, exit $status (full log: $work/last_run.log)"
  if [[ $status != 0 ]]; then
    echo "== crashing input(s) in $work/artifacts/; reproduce with: $binary <file>" >&2
  fi
  return "$status"
}

main "$@"; exit
