#!/usr/bin/env python3
"""Fails when firmware code references the heap, C++ exceptions or RTTI.

Runs `nm` on static libraries / objects of a bare-metal build and rejects every
undefined symbol that only a heap, exceptions or RTTI would pull in. Prints
what it checked, and for each violation the symbol (mangled and readable) and
the object that references it.

  check_freestanding.py --nm arm-none-eabi-nm --build-dir build/cortex-m3 \
      --expect fieldlink_protocol --expect fieldlink_reader_core
      every expected library must exist as lib<name>.a under the build folder;
      any other lib*.a found there is checked too.
  check_freestanding.py --nm ... --expect-reject malloc calls_malloc.o
      self-test: succeeds only if the given files ARE rejected for each named
      symbol (shows the check can fail).
  check_freestanding.py --nm ... --linked image.elf
      a linked image: every symbol counts, defined ones too (in an image the
      heap or the unwinder would be linked in, not left undefined).

Exit codes: 0 clean (or rejected as expected), 1 forbidden symbols found (or an
expected rejection did not happen), 2 usage error, missing library, or nm failure.
"""

import argparse
import fnmatch
import os
import re
import subprocess
import sys

# Undefined symbols that freestanding firmware must not reference, with why.
FORBIDDEN = [
    ("malloc", "heap"), ("calloc", "heap"), ("realloc", "heap"), ("free", "heap"),
    ("aligned_alloc", "heap"), ("memalign", "heap"), ("posix_memalign", "heap"),
    ("_malloc_r", "heap (newlib)"), ("_calloc_r", "heap (newlib)"),
    ("_realloc_r", "heap (newlib)"), ("_free_r", "heap (newlib)"),
    ("_Znw*", "operator new"), ("_Zna*", "operator new[]"),
    ("_Zdl*", "operator delete"), ("_Zda*", "operator delete[]"),
    ("__cxa_throw", "exceptions"), ("__cxa_rethrow", "exceptions"),
    ("__cxa_allocate_exception", "exceptions"), ("__cxa_free_exception", "exceptions"),
    ("__cxa_begin_catch", "exceptions"), ("__cxa_end_catch", "exceptions"),
    ("__gxx_personality_v0", "exceptions"), ("_Unwind_*", "exceptions (unwinder)"),
    ("__aeabi_unwind_cpp_pr*", "exceptions (Arm EHABI personality)"),
    ("_ZTI*", "RTTI typeinfo"), ("__dynamic_cast", "RTTI dynamic_cast"),
]

NM_LINE = re.compile(r"^(?P<where>.+?): (?P<symbol>\S+) (?P<type>\S)(?: |$)")


def forbidden_reason(symbol):
    for pattern, reason in FORBIDDEN:
        if fnmatch.fnmatchcase(symbol, pattern):
            return reason
    return None


def run(command):
    try:
        result = subprocess.run(command, check=False, capture_output=True, text=True)
    except OSError as error:
        sys.exit(f"check_freestanding: cannot run {command[0]}: {error}")
    if result.returncode != 0:
        print(result.stderr, file=sys.stderr, end="")
        print(f"check_freestanding: {' '.join(command)} failed with {result.returncode}", file=sys.stderr)
        sys.exit(2)
    return result.stdout


def demangle(cxxfilt, symbol):
    if not cxxfilt:
        return symbol
    return run([cxxfilt, symbol]).strip() or symbol


def object_count(ar, path):
    if not path.endswith(".a") or not ar:
        return 1
    return len([line for line in run([ar, "t", path]).splitlines() if line.strip()])


def find_libraries(build_dir, expected):
    """Returns (paths to check, names of expected libraries that are missing)."""
    found = {}
    for root, dirs, files in os.walk(build_dir):
        dirs[:] = [d for d in dirs if d != "CMakeFiles"]
        for name in files:
            if name.startswith("lib") and name.endswith(".a"):
                found.setdefault(name[3:-2], []).append(os.path.join(root, name))
    missing = [name for name in expected if name not in found]
    paths = sorted(path for paths in found.values() for path in paths)
    return paths, missing


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nm", required=True, help="nm of the target toolchain")
    parser.add_argument("--ar", help="ar of the target toolchain (to count archive members)")
    parser.add_argument("--cxxfilt", help="c++filt, to print readable names")
    parser.add_argument("--build-dir", help="bare-metal build folder to search for lib*.a")
    parser.add_argument("--expect", action="append", default=[], metavar="LIBRARY",
                        help="library that must have been built (name without lib and .a)")
    parser.add_argument("--expect-reject", action="append", default=[], metavar="SYMBOL",
                        help="self-test: the files must be rejected for this symbol")
    parser.add_argument("--linked", action="store_true",
                        help="the files are linked images: check defined symbols too")
    parser.add_argument("files", nargs="*", help="further .a or .o files to check")
    args = parser.parse_args()

    paths = list(args.files)
    if args.build_dir:
        found, missing = find_libraries(args.build_dir, args.expect)
        if missing:
            for name in missing:
                print(f"FAIL: expected library lib{name}.a was not built under {args.build_dir}")
            return 2
        paths += found
    elif args.expect:
        parser.error("--expect needs --build-dir")
    if not paths:
        parser.error("nothing to check")
    for path in paths:
        if not os.path.isfile(path):
            print(f"FAIL: {path} does not exist")
            return 2

    violations = []  # (file[member], symbol, reason)
    undefined = set()
    objects = 0
    for path in paths:
        objects += object_count(args.ar, path)
        nm_args = ["-A", "-P"] if args.linked else ["-A", "-P", "-u"]
        for line in run([args.nm, *nm_args, path]).splitlines():
            match = NM_LINE.match(line)
            if not match or (not args.linked and match["type"] not in "Uw"):
                continue
            undefined.add(match["symbol"])
            reason = forbidden_reason(match["symbol"])
            if reason:
                violations.append((match["where"], match["symbol"], reason))

    kind = "symbol(s)" if args.linked else "undefined symbol(s)"
    print(f"checked {len(paths)} file(s), {objects} object(s), {len(undefined)} distinct {kind}:")
    for path in paths:
        print(f"  {path}")
    print(f"forbidden {'' if args.linked else 'undefined '}symbols: " + " ".join(pattern for pattern, _ in FORBIDDEN))
    if not args.linked:  # an image's full symbol list is too long to be useful here
        print("undefined symbols referenced: " + (" ".join(sorted(undefined)) or "(none)"))
    for where, symbol, reason in violations:
        readable = demangle(args.cxxfilt, symbol)
        shown = symbol if readable == symbol else f"{symbol} ({readable})"
        print(f"FORBIDDEN: {shown} [{reason}] referenced by {where}")

    if args.expect_reject:
        rejected = {symbol for _, symbol, _ in violations}
        absent = [symbol for symbol in args.expect_reject if symbol not in rejected]
        if absent:
            print("SELF-TEST FAIL: the check did not reject " + " ".join(absent))
            return 1
        print("self-test ok: the check rejects " + " ".join(args.expect_reject))
        return 0

    if violations:
        print(f"FAIL: {len(violations)} forbidden reference(s)")
        return 1
    print("ok: no heap, exception or RTTI references")
    return 0


if __name__ == "__main__":
    sys.exit(main())
