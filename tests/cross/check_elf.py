#!/usr/bin/env python3
"""Checks that cross-built programs are what they claim: ELF for the expected
machine (and, for armhf, the hard-float EABI5), dynamically linked against the
target's loader, and needing only shared libraries that Raspberry Pi OS
(Debian 12 "bookworm") ships in its archive for that architecture.

  check_elf.py --arch arm64|armhf PROGRAM...

Reads the ELF headers and the dynamic section itself (no readelf needed), so
it checks the bytes that the Pi's kernel and loader will read."""

import argparse
import struct
import sys

EM_ARM, EM_AARCH64 = 40, 183
EF_ARM_EABI_MASK, EF_ARM_ABI_FLOAT_HARD = 0xFF000000, 0x00000400
PT_INTERP, PT_DYNAMIC = 3, 2
DT_NULL, DT_NEEDED, DT_STRTAB = 0, 1, 5

ARCHES = {
    "arm64": {"class": 2, "machine": EM_AARCH64, "interp": "/lib/ld-linux-aarch64.so.1"},
    "armhf": {"class": 1, "machine": EM_ARM, "interp": "/lib/ld-linux-armhf.so.3"},
}

# Sonames and the bookworm package that ships each (main archive, both architectures).
SHIPPED = {
    "libc.so.6": "libc6", "libm.so.6": "libc6", "libpthread.so.0": "libc6", "libdl.so.2": "libc6",
    "ld-linux-aarch64.so.1": "libc6", "ld-linux-armhf.so.3": "libc6",
    "libstdc++.so.6": "libstdc++6", "libgcc_s.so.1": "libgcc-s1",
    "libpaho-mqtt3as.so.1": "libpaho-mqtt1.3", "libpaho-mqtt3a.so.1": "libpaho-mqtt1.3",
    "libpaho-mqttpp3.so.1": "libpaho-mqttpp3-1",
    "libsqlite3.so.0": "libsqlite3-0", "libfmt.so.9": "libfmt9", "libzstd.so.1": "libzstd1",
    "libpq.so.5": "libpq5", "libssl.so.3": "libssl3", "libcrypto.so.3": "libssl3",
    "libtomlplusplus.so.3": "libtomlplusplus3", "libsystemd.so.0": "libsystemd0",
    "libcpp-httplib.so.0.11": "libcpp-httplib0.11",
}


def read_elf(path):
    data = open(path, "rb").read()
    if data[:4] != b"\x7fELF":
        raise ValueError("not an ELF file")
    elf_class, endian = data[4], data[5]
    if endian != 1:
        raise ValueError("not little-endian")
    if elf_class == 2:
        e_type, machine, _, _, phoff, _, flags, _, phentsize, phnum = struct.unpack_from("<HHIQQQIHHH", data, 16)
        ph_fmt, dyn_fmt = "<IIQQQQQQ", "<qQ"
    elif elf_class == 1:
        e_type, machine, _, _, phoff, _, flags, _, phentsize, phnum = struct.unpack_from("<HHIIIIIHHH", data, 16)
        ph_fmt, dyn_fmt = "<IIIIIIII", "<iI"
    else:
        raise ValueError(f"unknown ELF class {elf_class}")
    segments = []
    for i in range(phnum):
        fields = struct.unpack_from(ph_fmt, data, phoff + i * phentsize)
        if elf_class == 2:
            p_type, _, p_offset, p_vaddr, _, p_filesz = fields[:6]
        else:
            p_type, p_offset, p_vaddr, _, p_filesz = fields[:5]
        segments.append((p_type, p_offset, p_vaddr, p_filesz))
    return data, elf_class, e_type, machine, flags, segments, dyn_fmt


def vaddr_to_offset(segments, vaddr):
    for p_type, offset, seg_vaddr, filesz in segments:
        if p_type == 1 and seg_vaddr <= vaddr < seg_vaddr + filesz:  # PT_LOAD
            return offset + vaddr - seg_vaddr
    raise ValueError(f"address {vaddr:#x} is in no loaded segment")


def check(path, arch):
    want = ARCHES[arch]
    data, elf_class, e_type, machine, flags, segments, dyn_fmt = read_elf(path)
    problems = []
    if elf_class != want["class"] or machine != want["machine"]:
        problems.append(f"ELF class {elf_class}, machine {machine}; {arch} is class {want['class']}, "
                        f"machine {want['machine']}")
    if arch == "armhf" and ((flags & EF_ARM_EABI_MASK) != 0x05000000 or not flags & EF_ARM_ABI_FLOAT_HARD):
        problems.append(f"e_flags {flags:#x}: not EABI5 hard-float")
    interp = [data[o:o + n].rstrip(b"\0").decode() for t, o, _, n in segments if t == PT_INTERP]
    if interp != [want["interp"]]:
        problems.append(f"loader {interp}, expected {want['interp']}")
    needed = []
    for p_type, offset, _, filesz in segments:
        if p_type != PT_DYNAMIC:
            continue
        size = struct.calcsize(dyn_fmt)
        entries = [struct.unpack_from(dyn_fmt, data, offset + i) for i in range(0, filesz, size)]
        strtab = next(v for t, v in entries if t == DT_STRTAB)
        strtab_offset = vaddr_to_offset(segments, strtab)
        for tag, value in entries:
            if tag == DT_NULL:
                break
            if tag == DT_NEEDED:
                end = data.index(b"\0", strtab_offset + value)
                needed.append(data[strtab_offset + value:end].decode())
    if not needed:
        problems.append("no DT_NEEDED entries: not the dynamically linked program expected")
    foreign = [n for n in needed if n not in SHIPPED]
    if foreign:
        problems.append(f"needs libraries Raspberry Pi OS does not ship: {foreign}")
    return needed, problems


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", required=True, choices=sorted(ARCHES))
    parser.add_argument("programs", nargs="+")
    args = parser.parse_args()
    failed = False
    for path in args.programs:
        try:
            needed, problems = check(path, args.arch)
        except (OSError, ValueError, StopIteration) as e:
            needed, problems = [], [f"cannot read: {e}"]
        status = "ok" if not problems else "FAIL"
        packages = sorted({SHIPPED[n] for n in needed if n in SHIPPED})
        print(f"{status} {path}: {args.arch}, needs {', '.join(needed) or 'nothing'} "
              f"(packages {', '.join(packages)})")
        for p in problems:
            print(f"  {p}")
        failed |= bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
