#!/usr/bin/env bash
# Installs every Debian 12 package fieldlink needs to build, run and test.
# Idempotent: installs only what is missing. Needs root (or sudo) only then.
set -euo pipefail

packages=(
  # build
  g++ cmake ninja-build pkg-config
  # gateway
  libpaho-mqttpp-dev libpaho-mqtt-dev libssl-dev libsqlite3-dev libfmt-dev
  libcli11-dev nlohmann-json3-dev libtomlplusplus-dev libzstd-dev
  libpq-dev postgresql-15
  # systemd service notifications (optional at build time: the gateway builds without)
  libsystemd-dev
  # broker and tools used by the demo and the tests
  mosquitto mosquitto-clients sqlite3 python3
  # the CLI tests unpack `fieldlink export` output
  zstd
  # systemd-analyze checks the shipped unit (tests/integration/test_service_unit.py);
  # lintian the Debian packages (tests/package)
  systemd lintian
  # tests
  libgtest-dev libgmock-dev clang libclang-rt-14-dev clang-format
  # Cortex-M firmware
  gcc-arm-none-eabi libnewlib-arm-none-eabi libstdc++-arm-none-eabi-newlib
  # Cortex-M image tests (boards/mps2-an385 boots in qemu-system-arm -M mps2-an385)
  qemu-system-arm
  # the gateway's metrics, health and status page (gateway/http), and their tests:
  # the Prometheus parser checks /metrics, headless Chromium loads the status page
  libcpp-httplib-dev python3-prometheus-client chromium
  # programming the Nucleo-F103RB (boards/nucleo-f103rb: flash, flash-stlink targets)
  openocd stlink-tools
  # bench/run.py counts the gateway's fsync calls (SD-card wear) at their tracepoints
  linux-perf
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages present"
  exit 0
fi

echo "setup: installing ${missing[*]}"
if [ "$(id -u)" -eq 0 ]; then
  as_root=()
elif command -v sudo >/dev/null 2>&1; then
  as_root=(sudo)
else
  echo "setup: missing packages and not root: run as root or install: ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -qq
"${as_root[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "setup: done"
