#!/usr/bin/env python3
"""mps2_device.py leaves no process behind, however it ends.

  mps2_device_test.py --source <repo> --build-dir <tree> --bridge <exe> [--generator Ninja]

Starts the wrapper (QEMU with the image, and fieldlink-serial-bridge towards a port where no
broker listens, so both keep running) three times and ends it three ways; each time its
temporary folder (with the flash file) must be removed too:
  sigkill  SIGKILL to the wrapper alone (not its group): both children must die with it;
  sigterm  SIGTERM to the wrapper: exit status 0, both children gone;
  child    the bridge is SIGKILLed: the wrapper ends with status 1 and takes QEMU down.
Exit codes: 0 pass, 1 fail, 77 skipped (no arm-none-eabi-gcc or qemu-system-arm).
"""

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import mps2_an385_boots as boots  # noqa: E402
from mps2_device import free_port  # noqa: E402

WAIT_S = 20  # an upper bound for things that happen at once; never a measure of speed


def children_of(pid):
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid:
            found.append(int(entry))
    return found


def alive(pid):
    """True while the process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_until(predicate, what):
    deadline = time.monotonic() + WAIT_S
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {WAIT_S} s: {what}")
        time.sleep(0.05)


def start(args, elf, workdir, name):
    argv = [sys.executable, str(HERE / "mps2_device.py"), "--elf", elf, "--bridge", args.bridge,
            "--broker", f"127.0.0.1:{free_port()}", "--temp-root", str(workdir / "temp")]
    out = open(workdir / f"{name}.out", "wb")
    wrapper = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    out.close()
    kids = {}

    def started():
        # The third child is the wrapper's own clean-up process (its interpreter).
        for pid in children_of(wrapper.pid):
            try:
                exe = os.path.basename(os.readlink(f"/proc/{pid}/exe"))
            except OSError:
                continue
            if "qemu" in exe:
                kids["qemu"] = pid
            elif exe == os.path.basename(args.bridge):
                kids["bridge"] = pid
        return len(kids) == 2

    wait_until(started, "the wrapper started QEMU and the bridge")
    return wrapper, kids


def run(args, elf, workdir):
    failures = []
    for case in ("sigkill", "sigterm", "child"):
        wrapper, kids = start(args, elf, workdir, case)
        try:
            if case == "sigkill":
                wrapper.send_signal(signal.SIGKILL)
                expected = -signal.SIGKILL
            elif case == "sigterm":
                wrapper.send_signal(signal.SIGTERM)
                expected = 0
            else:
                os.kill(kids["bridge"], signal.SIGKILL)
                expected = 1
            code = wrapper.wait(timeout=WAIT_S)
            if code != expected:
                failures.append(f"{case}: wrapper exit status {code}, expected {expected}")
            try:
                wait_until(lambda: not any(alive(p) for p in kids.values()), "both children gone")
            except AssertionError as e:
                left = {name: pid for name, pid in kids.items() if alive(pid)}
                failures.append(f"{case}: {e}; still running: {left}")
            temp = workdir / "temp"
            try:
                wait_until(lambda: not any(temp.iterdir()), "its temporary folder removed")
            except AssertionError as e:
                failures.append(f"{case}: {e}: {sorted(p.name for p in temp.iterdir())}")
            print(f"{case}: wrapper status {code}; children {kids} gone: "
                  f"{not any(alive(p) for p in kids.values())}; temporary folder gone: {not any(temp.iterdir())}")
        finally:
            if wrapper.poll() is None:
                wrapper.kill()
                wrapper.wait()
            for pid in kids.values():
                if alive(pid):
                    os.kill(pid, signal.SIGKILL)
    return failures


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    boots.add_build_arguments(parser)
    parser.add_argument("--bridge", required=True)
    parser.add_argument("--workdir", default=None, help="where the wrappers' output goes (default: the build tree)")
    args = parser.parse_args()
    elf = boots.build_image(args)
    if elf is None:
        return boots.SKIP
    workdir = Path(args.workdir or os.path.join(args.build_dir, "mps2_device_test"))
    (workdir / "temp").mkdir(parents=True, exist_ok=True)
    try:
        failures = run(args, elf, workdir)
    except AssertionError as e:
        failures = [str(e)]
    for failure in failures:
        print("FAIL: " + failure)
    if failures:
        return 1
    print("ok: the wrapper's children end with it: SIGKILL, SIGTERM, and a child that dies")
    return 0


if __name__ == "__main__":
    sys.exit(main())
