#!/usr/bin/env bash
# Installs what cross-compiling the gateway and the Linux reader for a Raspberry Pi
# needs on Debian 12 (x86-64), and what runs the results under emulation:
# the cross compilers, qemu-user, and the target's -dev packages from Debian
# multiarch (dpkg --add-architecture). Idempotent: installs only what is missing.
#   scripts/setup-cross.sh              both targets (arm64 and armhf)
#   scripts/setup-cross.sh arm64        one of them
# Debian's libpq-dev cannot be installed for two architectures at once (it is
# not Multi-Arch: same), so the target's libpq-dev and libpq5 are unpacked into
# build/cross/<triplet>/ instead (the toolchain files look there).
set -euo pipefail
cd "$(dirname "$0")/.."

arches=("$@")
[ ${#arches[@]} -gt 0 ] || arches=(arm64 armhf)

triplet_of() {
  case "$1" in
    arm64) echo aarch64-linux-gnu ;;
    armhf) echo arm-linux-gnueabihf ;;
    *) echo "setup-cross: unknown architecture '$1' (known: arm64, armhf)" >&2; exit 2 ;;
  esac
}

if [ "$(id -u)" -eq 0 ]; then
  as_root=()
elif command -v sudo >/dev/null 2>&1; then
  as_root=(sudo)
else
  as_root=(false)
fi
export DEBIAN_FRONTEND=noninteractive

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

packages=(qemu-user-static)
# Header-only or architecture-independent: the host's copy serves every target.
packages+=(libcli11-dev nlohmann-json3-dev)
foreign=" $(dpkg --print-foreign-architectures | tr '\n' ' ') "
new_arch=0
for arch in "${arches[@]}"; do
  triplet=$(triplet_of "$arch")
  packages+=("g++-${triplet}")
  for p in libpaho-mqttpp-dev libpaho-mqtt-dev libssl-dev libsqlite3-dev libfmt-dev libzstd-dev \
           libtomlplusplus-dev libgtest-dev libgmock-dev libpq5 libsystemd-dev libcpp-httplib-dev; do
    packages+=("$p:$arch")
  done
  [[ "$foreign" == *" $arch "* ]] || new_arch=1
done

missing=()
for p in "${packages[@]}"; do installed "$p" || missing+=("$p"); done

if [ ${#missing[@]} -gt 0 ] || [ $new_arch -eq 1 ]; then
  if [ "${as_root[0]:-}" = false ]; then
    echo "setup-cross: missing packages and not root: run as root or install: ${missing[*]}" >&2
    exit 1
  fi
  for arch in "${arches[@]}"; do
    [[ "$foreign" == *" $arch "* ]] || "${as_root[@]}" dpkg --add-architecture "$arch"
  done
  echo "setup-cross: installing ${missing[*]}"
  "${as_root[@]}" apt-get update -qq
  "${as_root[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "setup-cross: all ${#packages[@]} packages present"
fi

# libpq-dev for each target, unpacked (not installed); its libpq.pc rebased there.
for arch in "${arches[@]}"; do
  triplet=$(triplet_of "$arch")
  root="build/cross/$triplet"
  pc="$root/usr/lib/$triplet/pkgconfig/libpq.pc"
  [ -f "$pc" ] && [ -e "$root/usr/lib/$triplet/libpq.so" ] && continue
  work=$(mktemp -d)
  chmod 755 "$work"  # apt's download user must be able to write there
  (cd "$work" && apt-get download -qq "libpq-dev:$arch" "libpq5:$arch")
  mkdir -p "$root"
  for deb in "$work"/*.deb; do dpkg -x "$deb" "$root"; done
  rm -rf "$work"
  abs=$(cd "$root" && pwd)
  sed -i "s#^prefix=/usr#prefix=$abs/usr#" "$pc"
  echo "setup-cross: libpq-dev:$arch unpacked into $root"
done
