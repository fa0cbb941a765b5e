#!/usr/bin/env python3
"""Prints the reader image's footprint and fails when it is over budget.

  check_footprint.py --size arm-none-eabi-size --nm arm-none-eabi-nm --elf image.elf
  check_footprint.py --size-output made_up.txt --stack 2048   (tests: no toolchain needed)

Flash is text + data (.data's initial values live in flash); RAM is data + bss
+ the stack the linker script reserves (its symbol __fieldlink_stack_size).
`size` is run in Berkeley format; --size-output takes such output instead.
Exit codes: 0 within budget, 1 over budget, 2 usage or tool error.
"""

import argparse
import subprocess
import sys

STACK_SYMBOL = "__fieldlink_stack_size"


def run(command):
    try:
        result = subprocess.run(command, check=False, capture_output=True, text=True)
    except OSError as error:
        sys.exit(f"check_footprint: cannot run {command[0]}: {error}")
    if result.returncode != 0:
        print(result.stderr, file=sys.stderr, end="")
        sys.exit(f"check_footprint: {' '.join(command)} failed with {result.returncode}")
    return result.stdout


def parse_berkeley(text):
    """(text, data, bss) from `size -B` output: a header line, then one line per file."""
    lines = [line.split() for line in text.splitlines() if line.strip()]
    if len(lines) < 2 or lines[0][:3] != ["text", "data", "bss"]:
        sys.exit("check_footprint: not Berkeley `size` output:\n" + text)
    try:
        return tuple(int(value) for value in lines[1][:3])
    except ValueError:
        sys.exit("check_footprint: not Berkeley `size` output:\n" + text)


def stack_size(nm, elf):
    for line in run([nm, "-P", elf]).splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[0] == STACK_SYMBOL:
            return int(fields[2], 16)
    sys.exit(f"check_footprint: {elf} has no {STACK_SYMBOL} symbol (the linker script reserves the stack)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--elf", help="linked image")
    parser.add_argument("--size", help="size of the target toolchain")
    parser.add_argument("--nm", help="nm of the target toolchain (for the stack symbol)")
    parser.add_argument("--size-output", help="file with `size -B` output, instead of running size")
    parser.add_argument("--stack", type=int, help="stack bytes, instead of reading the symbol")
    parser.add_argument("--name", default="image", help="what to call the image in the report")
    parser.add_argument("--flash-budget", type=int, default=32 * 1024)
    parser.add_argument("--ram-budget", type=int, default=16 * 1024)
    args = parser.parse_args()

    if args.size_output:
        with open(args.size_output, encoding="utf-8") as f:
            text, data, bss = parse_berkeley(f.read())
    elif args.elf and args.size:
        text, data, bss = parse_berkeley(run([args.size, "-B", args.elf]))
    else:
        parser.error("give --elf with --size, or --size-output")
    if args.stack is not None:
        stack = args.stack
    elif args.elf and args.nm:
        stack = stack_size(args.nm, args.elf)
    else:
        parser.error("give --stack, or --elf with --nm")

    flash = text + data
    ram = data + bss + stack
    print(f"footprint {args.name}: text={text} data={data} bss={bss} stack={stack} bytes")
    print(f"footprint {args.name}: flash {flash} of {args.flash_budget} ({100.0 * flash / args.flash_budget:.1f}%), "
          f"RAM {ram} of {args.ram_budget} ({100.0 * ram / args.ram_budget:.1f}%) including the stack")
    over = []
    if flash > args.flash_budget:
        over.append(f"flash {flash} > {args.flash_budget}")
    if ram > args.ram_budget:
        over.append(f"RAM {ram} > {args.ram_budget}")
    if over:
        print(f"FAIL: {args.name} is over its footprint budget: " + ", ".join(over))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
