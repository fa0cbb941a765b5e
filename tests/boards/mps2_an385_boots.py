#!/usr/bin/env python3
"""Builds the mps2-an385 reader image in its own tree and boots it in QEMU.

  mps2_an385_boots.py --source <repo> --build-dir <tree> [--generator Ninja]

Configures <tree> with toolchains/cortex-m3.cmake, FIELDLINK_BOARD=mps2-an385
and warnings as errors, builds it (the build itself enforces the footprint
budget and the symbol check), then runs the image under
`qemu-system-arm -M mps2-an385` with semihosting on stdout and UART0 in a file,
and checks the exit code, the readings summary and the UART banner.
Exit codes: 0 pass, 1 fail, 77 skipped (no arm-none-eabi-gcc or qemu-system-arm).
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import time

SKIP = 77
QEMU_TIMEOUT_S = 20
READINGS = 64  # kReadings in boards/mps2-an385/src/main.cpp
SUMMARY = re.compile(r"^summary board=mps2-an385 (?P<fields>.*)$", re.MULTILINE)
BANNER = re.compile(r"^fieldlink reader \S+ on mps2-an385 \(Cortex-M3\): uart0 up$", re.MULTILINE)


def step(command, what):
    started = time.monotonic()
    result = subprocess.run(command, check=False, capture_output=True, text=True)
    print(f"{what}: exit {result.returncode} in {time.monotonic() - started:.1f} s")
    if result.returncode != 0:
        print(result.stdout + result.stderr)
        sys.exit(f"FAIL: {what}")
    return result.stdout


def add_build_arguments(parser):
    parser.add_argument("--source", required=True)
    parser.add_argument("--build-dir", required=True)
    parser.add_argument("--generator", default="Ninja")
    parser.add_argument("--make-program")
    parser.add_argument("--cmake", default="cmake", help="the cmake of the calling build")


def build_image(args, needs=()):
    """Configures and builds the image in args.build_dir; returns its ELF, or None to skip (also
    when a program the caller needs beside the image, `needs`, is missing)."""
    missing = [tool for tool in ("arm-none-eabi-gcc", "qemu-system-arm", *needs) if shutil.which(tool) is None]
    if missing:
        print("SKIP: " + " and ".join(missing) + " not found (scripts/setup.sh installs them)")
        return None

    configure = [args.cmake, "-S", args.source, "-B", args.build_dir, "-G", args.generator,
                 "-DCMAKE_TOOLCHAIN_FILE=" + os.path.join(args.source, "toolchains", "cortex-m3.cmake"),
                 "-DFIELDLINK_BOARD=mps2-an385", "-DFIELDLINK_WERROR=ON", "-DCMAKE_BUILD_TYPE=MinSizeRel"]
    if args.make_program:
        configure.append("-DCMAKE_MAKE_PROGRAM=" + args.make_program)
    step(configure, "configure")
    built = step([args.cmake, "--build", args.build_dir, "--target", "fieldlink-reader", "--parallel", "2"], "build")
    for line in built.splitlines():
        if line.startswith("footprint "):
            print(line)
    return os.path.join(args.build_dir, "bin", "fieldlink-reader.elf")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_build_arguments(parser)
    args = parser.parse_args()

    elf = build_image(args)
    if elf is None:
        return SKIP

    uart_file = os.path.join(args.build_dir, "uart0.txt")
    if os.path.exists(uart_file):
        os.remove(uart_file)
    qemu = ["qemu-system-arm", "-M", "mps2-an385", "-nographic", "-monitor", "none",
            "-chardev", "stdio,id=semihost", "-semihosting-config", "enable=on,target=native,chardev=semihost",
            "-serial", "file:" + uart_file, "-kernel", elf]
    print("run: " + " ".join(qemu))
    started = time.monotonic()
    try:
        run = subprocess.run(qemu, check=False, capture_output=True, text=True, timeout=QEMU_TIMEOUT_S,
                             stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        sys.exit(f"FAIL: the image did not exit within {QEMU_TIMEOUT_S} s")
    print(f"qemu: exit {run.returncode} in {time.monotonic() - started:.1f} s")
    print("--- semihosting\n" + run.stdout + (run.stderr and "--- qemu stderr\n" + run.stderr))
    uart = open(uart_file, encoding="utf-8", errors="replace").read() if os.path.exists(uart_file) else ""
    print("--- uart0\n" + uart)

    failures = []
    if run.returncode != 0:
        failures.append(f"exit code {run.returncode}, expected 0")
    summary = SUMMARY.search(run.stdout)
    if not summary:
        failures.append("no summary line on semihosting")
    else:
        fields = dict(item.split("=", 1) for item in summary["fields"].split())
        expected = {"produced": str(READINGS), "held": str(READINGS), "remount_held": str(READINGS),
                    "boot": "2", "next_seq": str(READINGS + 1), "sensor_errors": "0", "store_errors": "0"}
        for key, value in expected.items():
            if fields.get(key) != value:
                failures.append(f"summary {key}={fields.get(key)}, expected {value}")
        if not re.fullmatch(r"[0-9a-f]{16}", fields.get("incarnation", "")) or fields["incarnation"] == "0" * 16:
            failures.append("summary has no random incarnation")
        if summary.group(0) not in uart:
            failures.append("UART0 did not carry the summary line")
    if "\nPASS\n" not in "\n" + run.stdout:
        failures.append("no PASS on semihosting")
    if not BANNER.search(uart):
        failures.append("no banner on UART0")
    for failure in failures:
        print("FAIL: " + failure)
    if failures:
        return 1
    print("ok: the image booted, sampled into the spool, reported and exited 0")
    return 0


if __name__ == "__main__":
    sys.exit(main())
