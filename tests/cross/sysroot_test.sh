#!/usr/bin/env bash
# target.cross.sysroot: the toolchain files' FIELDLINK_SYSROOT path, end to end.
# Assembles a Raspberry Pi OS-like root (Debian multiarch layout) from the
# target's packages that scripts/setup-cross.sh installed here, configures a
# fresh tree with that sysroot only (the extra root points nowhere), checks that
# every library and header comes from it, builds fieldlink-gateway and runs it
# under qemu-user with the sysroot as its root.
#   sysroot_test.sh --source DIR --toolchain FILE --arch arm64|armhf --extra-root DIR
#                   --qemu PROGRAM --python PROGRAM [--cmake PROGRAM] [--werror ON|OFF]
# CMAKE_BUILD_PARALLEL_LEVEL: build jobs (default 2); FIELDLINK_SYSROOT_TEST_KEEP=1 keeps the
# temporary folder (sysroot, tree, logs) for a look after a failure.
set -euo pipefail

source_dir="" toolchain="" arch="" extra_root="" qemu="" python="" cmake=cmake werror=OFF
while [ $# -gt 0 ]; do
  case "$1" in
    --source) source_dir=$2 ;;
    --toolchain) toolchain=$2 ;;
    --arch) arch=$2 ;;
    --extra-root) extra_root=$2 ;;
    --qemu) qemu=$2 ;;
    --python) python=$2 ;;
    --cmake) cmake=$2 ;;
    --werror) werror=$2 ;;
    *) echo "sysroot_test: unknown argument '$1'" >&2; exit 2 ;;
  esac
  shift 2
done
for v in source_dir toolchain arch extra_root qemu python; do
  [ -n "${!v}" ] || { echo "sysroot_test: --${v//_/-} is required" >&2; exit 2; }
done
case "$arch" in
  arm64) triplet=aarch64-linux-gnu ;;
  armhf) triplet=arm-linux-gnueabihf ;;
  *) echo "sysroot_test: unknown architecture '$arch'" >&2; exit 2 ;;
esac

fail() { echo "FAIL: $*" >&2; exit 1; }
step() { echo "== [${SECONDS}s] $*"; }

work=$(mktemp -d "${TMPDIR:-/tmp}/fieldlink-sysroot.XXXXXX")
if [ -n "${FIELDLINK_SYSROOT_TEST_KEEP:-}" ]; then
  trap 'echo "kept $work"' EXIT
else
  trap 'rm -rf "$work"' EXIT
fi
work=$(realpath "$work")  # the paths CMake reports are compared with it
sysroot=$work/root
build=$work/build
mkdir "$sysroot"

# --- The packages: fieldlink's -dev packages for the target, the toolchain's
# runtime, and everything they depend on, as dpkg has them installed.
roots=(libc6 libc6-dev linux-libc-dev libstdc++6 libgcc-s1
       libpaho-mqttpp-dev libpaho-mqtt-dev libssl-dev libsqlite3-dev libfmt-dev libzstd-dev
       libtomlplusplus-dev libgtest-dev libgmock-dev libsystemd-dev libpq5 libcpp-httplib-dev)
# Architecture: all; setup-cross.sh installs the host's copy, a Pi needs its own.
indep_roots=(libcli11-dev nlohmann-json3-dev)

step "resolving the target's packages ($arch)"
declare -A deps=()
while IFS='|' read -r name pkg_arch status predeps depends; do
  [ "${status:0:2}" = ii ] || continue
  deps["$name:$pkg_arch"]="$predeps, $depends"
done < <(dpkg-query -W -f='${Package}|${Architecture}|${db:Status-Abbrev}|${Pre-Depends}|${Depends}\n')

# The installed package that satisfies a dependency on name $1: the target's, or an Architecture: all one.
installed_as() {
  if [ -n "${deps["$1:$arch"]+x}" ]; then echo "$1:$arch"
  elif [ -n "${deps["$1:all"]+x}" ]; then echo "$1:all"
  fi
}

declare -A chosen=()
queue=()
for p in "${roots[@]}"; do
  [ -n "${deps["$p:$arch"]+x}" ] || fail "$p:$arch is not installed (run scripts/setup-cross.sh $arch)"
  queue+=("$p:$arch")
done
for p in "${indep_roots[@]}"; do
  [ -n "${deps["$p:all"]+x}" ] || fail "$p is not installed (run scripts/setup-cross.sh $arch)"
  queue+=("$p:all")
done
skipped=()
while [ ${#queue[@]} -gt 0 ]; do
  pkg=${queue[0]}
  queue=("${queue[@]:1}")
  [ -z "${chosen["$pkg"]+x}" ] || continue
  chosen["$pkg"]=1
  # "a (>= 1) | b:any, c": versions, architecture qualifiers and restrictions dropped.
  normalized=$(sed -E 's/\([^)]*\)//g; s/\[[^]]*\]//g; s/<[^>]*>//g; s/:[a-z0-9]+//g; s/ //g' <<<"${deps["$pkg"]}")
  IFS=',' read -ra clauses <<<"$normalized"
  for clause in "${clauses[@]}"; do
    [ -n "$clause" ] || continue
    IFS='|' read -ra alternatives <<<"$clause"
    found=""
    for alt in "${alternatives[@]}"; do
      found=$(installed_as "$alt")
      [ -z "$found" ] || break
    done
    if [ -n "$found" ]; then
      queue+=("$found")
    else
      # A host tool (Multi-Arch: foreign, e.g. libc-dev-bin) or a virtual package: nothing to copy.
      skipped+=("$clause")
    fi
  done
done
packages=()
for pkg in "${!chosen[@]}"; do packages+=("${pkg%:all}"); done
mapfile -t packages < <(printf '%s\n' "${packages[@]}" | sort)
echo "${#packages[@]} packages: ${packages[*]}"
[ ${#skipped[@]} -eq 0 ] || echo "not copied (host tools or virtual): $(printf '%s\n' "${skipped[@]}" | sort -u | tr '\n' ' ')"

# --- Their files, laid out as on the Pi: this host's layout (merged /usr: lib -> usr/lib),
# which Raspberry Pi OS 12 shares. Documentation is left out; it is only bulk.
step "assembling the sysroot in $sysroot"
mapfile -t listed < <(dpkg -L "${packages[@]}" | grep '^/' \
  | grep -Ev '^/usr/share/(doc|man|info|locale|lintian|bug)(/|$)' | sort -u)
declare -A canonical_dir=()
mapfile -t dirnames < <(for p in "${listed[@]}"; do d=${p%/*}; echo "${d:-/}"; done | sort -u)
for d in "${dirnames[@]}"; do
  canonical_dir["$d"]=$(realpath -e "$d" 2>/dev/null || true)
done
dirs=() files=() links=()
for p in "${listed[@]}"; do
  [ "$p" != "/." ] || continue
  d=${p%/*}
  c=${canonical_dir["${d:-/}"]}
  [ -n "$c" ] || continue
  c=${c%/}/${p##*/}
  # A symlink stays a symlink, a symlinked folder too (lib -> usr/lib).
  if [ -L "$p" ]; then links+=("$c")
  elif [ -d "$p" ]; then dirs+=("$c")
  elif [ -e "$p" ]; then files+=("$c")
  fi
done
mapfile -t links < <(printf '%s\n' "${links[@]}" | sort -u)
mapfile -t files < <(printf '%s\n' "${files[@]}" | sort -u)
printf '%s\0' "${dirs[@]/#/$sysroot}" | xargs -0 mkdir -p

# Hard links where this file system and fs.protected_hardlinks allow, else copies.
# Never both: a copy onto an existing hard link would write into the host's file.
link_opt=""
if ln "${files[0]}" "$work/probe" 2>/dev/null; then
  link_opt=-l
  rm "$work/probe"
fi
printf '%s\0' "${files[@]}" | xargs -0 cp -a $link_opt --parents -t "$sysroot"
printf '%s\0' "${links[@]}" | xargs -0 cp -a --parents -t "$sysroot"
echo "${#files[@]} files ($([ -n "$link_opt" ] && echo hard links || echo copies)), ${#links[@]} symlinks, ${#dirs[@]} folders"

# libpq-dev, which setup-cross.sh unpacks instead of installing; on a Pi it is
# installed, its libpq.pc with prefix=/usr (setup-cross.sh rebased it onto the extra root).
[ -f "$extra_root/usr/lib/$triplet/pkgconfig/libpq.pc" ] \
  || fail "no libpq-dev in $extra_root (run scripts/setup-cross.sh $arch)"
cp -a $link_opt --remove-destination "$extra_root/usr/." "$sysroot/usr/"
pc=$sysroot/usr/lib/$triplet/pkgconfig/libpq.pc
sed -E 's#^prefix=.*#prefix=/usr#' "$extra_root/usr/lib/$triplet/pkgconfig/libpq.pc" >"$work/libpq.pc"
mv "$work/libpq.pc" "$pc"  # a new file: the hard link to the extra root's copy is replaced, not written

# A copy off a Pi keeps absolute symlinks (libm.so -> /lib/...), which on this
# machine would point into the host; rebase them into the sysroot, as the docs say to.
rebased=0
while IFS= read -r -d '' link; do
  target=$(readlink "$link")
  ln -sfn "$(realpath -s -m --relative-to="${link%/*}" "$sysroot$target")" "$link"
  rebased=$((rebased + 1))
done < <(find "$sysroot" -type l -lname '/*' -print0)
echo "$rebased absolute symlinks rebased"
loader=$(dpkg -L "libc6:$arch" | grep -E '^/lib/ld-linux[^/]*\.so\.[0-9]+$' | head -n1)
[[ -n "$loader" && -e "$sysroot$loader" ]] || fail "no dynamic loader $loader in the sysroot"
case "$(realpath "$sysroot$loader")" in "$sysroot"/*) ;; *) fail "the sysroot's loader resolves outside it" ;; esac

# --- Configure: the sysroot is the only source (the extra root does not exist).
# pkg-config through a wrapper that logs where it was told to look: with a wrong
# PKG_CONFIG_LIBDIR the host's .pc files still yield paths under the sysroot.
real_pkg_config=$(command -v pkg-config) || fail "no pkg-config"
pkg_config_log=$work/pkg-config.log
cat >"$work/pkg-config" <<EOF
#!/bin/sh
printf '%s\n' "\${PKG_CONFIG_LIBDIR-}:\${PKG_CONFIG_PATH-}" >>'$pkg_config_log'
exec '$real_pkg_config' "\$@"
EOF
chmod +x "$work/pkg-config"
step "configuring $build"
configure_log=$work/configure.log
if ! "$cmake" -S "$source_dir" -B "$build" -G Ninja \
       -DPKG_CONFIG_EXECUTABLE="$work/pkg-config" \
       -DCMAKE_TOOLCHAIN_FILE="$toolchain" \
       -DFIELDLINK_SYSROOT="$sysroot" \
       -DFIELDLINK_CROSS_EXTRA_ROOT="$work/no-extra-root" \
       -DCMAKE_BUILD_TYPE= \
       -DFIELDLINK_WERROR="$werror" >"$configure_log" 2>&1; then
  cat "$configure_log"
  fail "configure with FIELDLINK_SYSROOT failed"
fi
grep -F "fieldlink:" "$configure_log" || true
grep -qF "target libraries from sysroot $sysroot;" "$configure_log" \
  || fail "configure does not name the sysroot as the target libraries' source"
grep -qF -- "-L $sysroot'" "$configure_log" \
  || fail "the tests' emulator does not use the sysroot as its root (qemu -L)"

# Paths compared after symlinks are followed. The extra root lies in the source
# tree (build/cross), so it is excluded from "the project's own files" by name.
source_real=$(realpath "$source_dir")
extra_real=$(realpath -m "$extra_root")
under() { case "$1" in "$2" | "$2"/*) return 0 ;; *) return 1 ;; esac; }
in_sysroot() { under "$(realpath -m "$1")" "$sysroot"; }
in_project() {
  local real
  real=$(realpath -m "$1")
  ! under "$real" "$extra_real" && { under "$real" "$build" || under "$real" "$source_real"; }
}

# Every library, header folder and package config CMake found for fieldlink's dependencies.
step "checking where CMake found the dependencies"
wanted="paho|sqlite|fmt|zstd|pq|systemd|ssl|crypto|toml|gtest|gmock|cli11|nlohmann"
declare -A seen=()
bad=0
while IFS= read -r entry; do
  name=${entry%%:*}
  value=${entry#*=}
  [ -n "$value" ] || continue
  [[ "$name" != *_EXECUTABLE && "$name" != *_PROGRAM ]] || continue  # host programs
  IFS=';' read -ra items <<<"$value"
  for item in "${items[@]}"; do
    [ "${item:0:1}" = / ] || { echo "  $name: not found ($item)"; bad=1; continue; }
    if in_sysroot "$item"; then echo "  ok  $name=$item"; else echo "  BAD $name=$item (outside the sysroot)"; bad=1; fi
  done
  lower=${name,,}
  for dep in paho sqlite fmt zstd pq systemd; do
    case "$lower" in *"$dep"*) seen[$dep]=1 ;; esac
  done
done < <(grep -Ei "^[a-z0-9_]*($wanted)[a-z0-9_]*:(FILEPATH|PATH)=" "$build/CMakeCache.txt")
for dep in paho sqlite fmt zstd pq systemd; do
  [ -n "${seen[$dep]+x}" ] || { echo "  no cache entry for $dep"; bad=1; }
done
[ -s "$pkg_config_log" ] || { echo "  pkg-config never ran"; bad=1; }
while IFS= read -r dir; do
  [ -n "$dir" ] || continue
  in_sysroot "$dir" || { echo "  BAD pkg-config searched $dir (outside the sysroot)"; bad=1; }
done < <(tr ':' '\n' <"$pkg_config_log" 2>/dev/null | sort -u)
[ $bad -eq 0 ] || fail "CMake found libraries outside the sysroot (or none)"

# --- Build: only the gateway and what it links.
step "building fieldlink-gateway"
"$cmake" --build "$build" --target fieldlink-gateway --parallel "${CMAKE_BUILD_PARALLEL_LEVEL:-2}" >"$work/build.log" 2>&1 \
  || { tail -n 60 "$work/build.log"; fail "building fieldlink-gateway against the sysroot failed"; }
gateway=$build/bin/fieldlink-gateway

# The link line and the compile commands: no library or header folder of the host.
step "checking the link line and include folders"
read -ra link_words < <(ninja -C "$build" -t commands bin/fieldlink-gateway | tail -n 1)
bad=0
for word in "${link_words[@]}"; do
  path=""
  case "$word" in
    -L/* | -I/*) path=${word:2} ;;
    /*.so | /*.so.* | /*.a) path=$word ;;
  esac
  [ -n "$path" ] || continue
  in_sysroot "$path" || in_project "$path" || { echo "  link line uses $path, outside the sysroot"; bad=1; }
done
while IFS= read -r dir; do
  in_sysroot "$dir" || in_project "$dir" || { echo "  compile commands use $dir, outside the sysroot"; bad=1; }
done < <(grep -oE -- '-(I|isystem) ?/[^ "]+' "$build/compile_commands.json" | sed -E 's/^-(I|isystem) ?//' | sort -u)
[ $bad -eq 0 ] || fail "the build used files of the host"

step "check_elf.py"
"$python" "$source_dir/tests/cross/check_elf.py" --arch "$arch" "$gateway"

# --- Run: qemu -L falls back to the host's path when the sysroot lacks a file, so
# the loader's own list of what it loaded is checked against the sysroot.
step "running it under qemu-user with -L $sysroot"
run_target() { env -u LD_LIBRARY_PATH -u LD_PRELOAD "$qemu" -L "$sysroot" "$@"; }
trace=$(run_target -E LD_TRACE_LOADED_OBJECTS=1 "$gateway") \
  || { echo "$trace"; fail "the loader could not load the gateway from the sysroot"; }
bad=0
loaded=0
while read -r first arrow path _; do
  if [ "$arrow" = "=>" ]; then
    [ "$path" != not ] || { echo "  $first not found"; bad=1; continue; }
  else
    path=$first
  fi
  [ "${path:0:1}" = / ] || continue  # linux-vdso.so.1: the kernel's
  loaded=$((loaded + 1))
  real=$(realpath -e "$sysroot$path" 2>/dev/null) || { echo "  $path: not in the sysroot (came from the host)"; bad=1; continue; }
  under "$real" "$sysroot" || { echo "  $path: resolves to $real, outside the sysroot"; bad=1; }
done <<<"$trace"
[[ $bad -eq 0 && $loaded -gt 3 ]] || { echo "$trace"; fail "shared libraries did not all come from the sysroot"; }
echo "$loaded shared objects loaded (the loader among them), all from the sysroot"

version=$(run_target "$gateway" --version) || fail "fieldlink-gateway --version exited $?"
echo "$version"
[[ "$version" =~ ^fieldlink-gateway\ [0-9]+\.[0-9]+\.[0-9]+\ \(systemd\ notifications:\ yes\)$ ]] \
  || fail "unexpected --version output (libsystemd from the sysroot expected)"
help=$(run_target "$gateway" --help) || fail "fieldlink-gateway --help exited $?"
grep -q -- "--config" <<<"$help" || fail "--help does not list --config"
step "ok: fieldlink-gateway built from and runs on the sysroot alone"
