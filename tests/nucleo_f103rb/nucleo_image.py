#!/usr/bin/env python3
"""Builds the nucleo-f103rb reader image in its own tree and checks it (no hardware).

  nucleo_image.py --source <repo> --build-dir <tree> [--generator Ninja]

Configures <tree> with toolchains/cortex-m3.cmake and FIELDLINK_BOARD=nucleo-f103rb,
builds it (the build runs check_footprint.py for the 32 KiB / 16 KiB budget and the
chip, and check_freestanding.py --linked), then checks: the RAM of every section
placed in SRAM (Berkeley `size` counts the RAM-resident .ramfunc code as text) plus
the stack within 16 KiB; the spool region outside the image; the .bin beside the
ELF; `flash` and `flash-stlink` in `--target help`; openocd's board script installed
(checked as a file; openocd is never run). Exit 0 pass, 1 fail, 77 skip (no
arm-none-eabi-gcc).
"""

import argparse
import os
import shutil
import subprocess
import sys

SKIP = 77
RAM_START, RAM_BUDGET = 0x20000000, 16 * 1024
OPENOCD_BOARD = "board/st_nucleo_f103rb.cfg"


def step(command, what):
    result = subprocess.run(command, check=False, capture_output=True, text=True)
    print(f"{what}: exit {result.returncode}")
    if result.returncode != 0:
        print(result.stdout + result.stderr)
        sys.exit(f"FAIL: {what}")
    return result.stdout


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", required=True)
    parser.add_argument("--build-dir", required=True)
    parser.add_argument("--generator", default="Ninja")
    parser.add_argument("--make-program")
    parser.add_argument("--cmake", default="cmake")
    args = parser.parse_args()
    if shutil.which("arm-none-eabi-gcc") is None:
        print("SKIP: arm-none-eabi-gcc not found (scripts/setup.sh installs gcc-arm-none-eabi)")
        return SKIP
    configure = [args.cmake, "-S", args.source, "-B", args.build_dir, "-G", args.generator,
                 "-DCMAKE_TOOLCHAIN_FILE=" + os.path.join(args.source, "toolchains", "cortex-m3.cmake"),
                 "-DFIELDLINK_BOARD=nucleo-f103rb", "-DFIELDLINK_WERROR=ON", "-DCMAKE_BUILD_TYPE=MinSizeRel"]
    if args.make_program:
        configure.append("-DCMAKE_MAKE_PROGRAM=" + args.make_program)
    step(configure, "configure")
    step([args.cmake, "--build", args.build_dir, "--target", "fieldlink-reader", "--parallel", "2"], "build")
    failures = []
    elf = os.path.join(args.build_dir, "bin", "fieldlink-reader.elf")
    # The build ran these after linking; run them again here, so an unchanged tree is checked too.
    check = os.path.join(args.source, "boards", "mps2-an385", "check_footprint.py")
    tools = ["--size", "arm-none-eabi-size", "--nm", "arm-none-eabi-nm", "--elf", elf]
    for name, extra in (("nucleo-f103rb", []), ("nucleo-f103rb-chip", ["--flash-budget", "65536", "--ram-budget", "20480"])):
        result = subprocess.run([sys.executable, check, "--name", name] + tools + extra, capture_output=True, text=True)
        print(result.stdout, end="")
        if result.returncode != 0:
            failures.append(f"footprint check {name} failed")
    symbols_check = subprocess.run([sys.executable, os.path.join(args.source, "tests", "target", "check_freestanding.py"),
                                    "--linked", "--nm", "arm-none-eabi-nm", elf], capture_output=True, text=True)
    print(symbols_check.stdout, end="")
    if symbols_check.returncode != 0:
        failures.append("heap, exception or RTTI symbols in the image")
    sections = step(["arm-none-eabi-size", "-A", elf], "size -A")
    ram = 0
    for line in sections.splitlines():
        fields = line.split()
        if len(fields) == 3 and fields[1].isdigit() and fields[2].isdigit():
            if RAM_START <= int(fields[2]) < RAM_START + 0x5000:
                ram += int(fields[1])
    symbols = {f.split()[0]: int(f.split()[2], 16) for f in step(["arm-none-eabi-nm", "-P", elf], "nm").splitlines()
               if len(f.split()) >= 3}
    stack = symbols.get("__fieldlink_stack_size", 0)
    print(f"RAM by address: {ram} bytes of sections + {stack} stack = {ram + stack} of {RAM_BUDGET}")
    if stack == 0 or ram + stack > RAM_BUDGET:
        failures.append(f"RAM {ram + stack} over {RAM_BUDGET} (or no stack symbol)")
    if symbols.get("__fieldlink_spool_start") != 0x08010000:
        failures.append("spool region not at 0x08010000")
    if symbols.get("_etext", 0) > 0x08010000 or symbols.get("__fieldlink_data_load", 0) >= 0x08010000:
        failures.append("image reaches into the spool pages")
    if not os.path.exists(os.path.join(args.build_dir, "bin", "fieldlink-reader.bin")):
        failures.append("no fieldlink-reader.bin for st-flash")
    targets = step([args.cmake, "--build", args.build_dir, "--target", "help"], "target help")
    for target in ("flash", "flash-stlink"):
        if not any(line.split(":")[0].strip() == target for line in targets.splitlines()):
            failures.append(f"no `{target}` target")
    openocd = shutil.which("openocd")
    if openocd:
        scripts = os.path.join(os.path.dirname(os.path.dirname(os.path.realpath(openocd))), "share", "openocd", "scripts")
        if not os.path.isfile(os.path.join(scripts, OPENOCD_BOARD)):
            failures.append(f"openocd has no {OPENOCD_BOARD} under {scripts}")
    else:
        print("note: openocd not installed; board script not checked (scripts/setup.sh installs it)")
    for failure in failures:
        print("FAIL: " + failure)
    if failures:
        return 1
    print("ok: image within budget and chip, no heap symbols, flash targets present")
    return 0


if __name__ == "__main__":
    sys.exit(main())
