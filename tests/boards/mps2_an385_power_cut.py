#!/usr/bin/env python3
"""Power cut: the mps2-an385 image killed with SIGKILL and restarted on the same flash file.

  mps2_an385_power_cut.py --source <repo> --build-dir <tree> [--generator Ninja] [--seed N]

Builds the image like mps2_an385_boots.py (same tree), then runs it in
`mode=run` on one host file (the spool's flash, README "Persistent flash") in
a temporary directory. Each run is killed with SIGKILL once it has printed a
pseudo-random number of `stored` lines (fixed seed), and restarted on the same
file. After every restart the recovery line must show the same incarnation
(recovered, not reformatted), the next boot, a next_seq above every seq
printed before, and every reading printed as stored still held. The last run
stores a few readings and exits 0.
Exit codes: 0 pass, 1 fail, 77 skipped (no arm-none-eabi-gcc or qemu-system-arm).
"""

import argparse
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time

import mps2_an385_boots as boots

KILLS = 4
RUN_TIMEOUT_S = 10
RECOVERED = re.compile(r"^recovered inc=(?P<inc>[0-9a-f]{16}) boot=(?P<boot>\d+) next_seq=(?P<next>\d+) "
                       r"held=(?P<held>\d+) dropped=(?P<dropped>\d+) formatted=(?P<formatted>[01]) "
                       r"bad_slots=(?P<bad>\d+)$")
HELD = re.compile(r"^held seqs=(?P<first>\d+)-(?P<last>\d+)$")
STORED = re.compile(r"^stored inc=(?P<inc>[0-9a-f]{16}) boot=(?P<boot>\d+) seq=(?P<seq>\d+) ")


class Run:
    """One boot of the image: what it printed, parsed."""

    def __init__(self):
        self.lines = []
        self.recovered = None
        self.held = set()
        self.stored = []  # (inc, boot, seq) in the order printed
        self.returncode = None

    def take(self, line):
        self.lines.append(line)
        if m := RECOVERED.match(line):
            self.recovered = {k: (v if k == "inc" else int(v)) for k, v in m.groupdict().items()}
        elif m := HELD.match(line):
            self.held.update(range(int(m["first"]), int(m["last"]) + 1))
        elif m := STORED.match(line):
            self.stored.append((m["inc"], int(m["boot"]), int(m["seq"])))


def boot(elf, flash, kill_after=None, delay_s=0.0, readings=None):
    """Runs the image once; SIGKILL `delay_s` after the `kill_after`-th stored line, else waits for its exit."""
    words = ["mode=run", "link=none", "flash=" + flash] + ([f"readings={readings}"] if readings else [])
    qemu = ["qemu-system-arm", "-M", "mps2-an385", "-nographic", "-monitor", "none",
            "-chardev", "stdio,id=semihost", "-semihosting-config", "enable=on,target=native,chardev=semihost",
            "-serial", "null", "-kernel", elf, "-append", " ".join(words)]
    process = subprocess.Popen(qemu, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    watchdog = threading.Timer(RUN_TIMEOUT_S, process.kill)
    watchdog.start()
    run = Run()
    killer = None
    for line in process.stdout:
        run.take(line.rstrip("\n"))
        if killer is None and kill_after is not None and len(run.stored) >= kill_after:
            # The delay moves the kill to a random phase of the sampling cycle
            # (between readings, in an append, in a sector rotation).
            killer = threading.Timer(delay_s, process.send_signal, (signal.SIGKILL,))
            killer.start()
        # Keep reading to the end: every line in the pipe was printed before the kill.
    run.returncode = process.wait()
    watchdog.cancel()
    killed = killer is not None
    if not killed and kill_after is not None:
        print("\n".join(run.lines))
        sys.exit(f"FAIL: the run ended (exit {run.returncode}) before {kill_after} stored lines")
    return run


def check_restart(run, incarnation, previous_boot, printed, failures, label):
    r = run.recovered
    if r is None:
        failures.append(f"{label}: no recovery line")
        return
    if r["inc"] != incarnation or r["formatted"] != 0:
        failures.append(f"{label}: incarnation {r['inc']} formatted={r['formatted']}, expected {incarnation} recovered")
    if r["boot"] != previous_boot + 1:
        failures.append(f"{label}: boot {r['boot']}, expected {previous_boot + 1}")
    if printed and r["next"] <= max(printed):
        failures.append(f"{label}: next_seq {r['next']} reuses seq {max(printed)} printed before the kill")
    lost = sorted(set(printed) - run.held)
    if lost:
        failures.append(f"{label}: {len(lost)} readings printed as stored are not held: {lost[:10]}")
    if r["held"] != len(run.held) or r["dropped"] != 0:
        failures.append(f"{label}: held={r['held']} dropped={r['dropped']}, held lines list {len(run.held)}")


def check_stored(run, incarnation, failures, label):
    r = run.recovered
    if r is None:
        return
    seqs = [seq for _, _, seq in run.stored]
    if any((inc, b) != (incarnation, r["boot"]) for inc, b, _ in run.stored):
        failures.append(f"{label}: a stored line with another incarnation or boot")
    if seqs and (seqs[0] < r["next"] or any(b <= a for a, b in zip(seqs, seqs[1:]))):
        failures.append(f"{label}: stored seqs not increasing from next_seq {r['next']}: {seqs[:5]}...")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    boots.add_build_arguments(parser)
    parser.add_argument("--seed", type=int, default=385)
    args = parser.parse_args()
    elf = boots.build_image(args)
    if elf is None:
        return boots.SKIP

    rng = random.Random(args.seed)
    kill_points = [rng.randint(1, 40) for _ in range(KILLS)]
    delays = [rng.uniform(0.0, 0.015) for _ in range(KILLS)]
    print(f"seed {args.seed}: kill after {kill_points} stored lines, then "
          + ", ".join(f"{d * 1000:.1f}" for d in delays) + " ms")
    failures = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="fieldlink-power-cut-") as directory:
        flash = os.path.join(directory, "flash.bin")
        printed = []  # every seq printed as stored, over all runs
        incarnation = None
        previous_boot = None
        for index, kill_after in enumerate(kill_points + [None]):
            label = f"run {index + 1}"
            if kill_after is None:
                run = boot(elf, flash, readings=5)
            else:
                run = boot(elf, flash, kill_after=kill_after, delay_s=delays[index])
            r = run.recovered
            summary = " ".join(f"{k}={v}" for k, v in r.items()) if r else "none"
            print(f"{label}: recovered {summary}; held {len(run.held)}; stored {len(run.stored)} "
                  f"(seqs {run.stored[0][2] if run.stored else '-'}..{run.stored[-1][2] if run.stored else '-'}); "
                  f"exit {run.returncode}" + (" (killed)" if kill_after else ""))
            if index == 0:
                if r is None or r["formatted"] != 1 or r["held"] != 0:
                    failures.append(f"{label}: expected a freshly formatted spool: {r}")
                    break
                incarnation = r["inc"]
            else:
                check_restart(run, incarnation, previous_boot, printed, failures, label)
            check_stored(run, incarnation, failures, label)
            if r is None:
                print("\n".join(run.lines))
                break
            previous_boot = r["boot"]
            printed.extend(seq for _, _, seq in run.stored)
            if kill_after is None and (run.returncode != 0 or not any(l.startswith("done ") for l in run.lines)):
                failures.append(f"{label}: exit {run.returncode}, expected 0 and a done line")
        if os.path.getsize(flash) != 16 * 1024:
            failures.append(f"the flash file is {os.path.getsize(flash)} bytes, expected 16384")
    print(f"{len(kill_points) + 1} runs in {time.monotonic() - started:.1f} s")
    for failure in failures:
        print("FAIL: " + failure)
    if failures:
        return 1
    print("ok: every kill recovered the same spool, the next boot, no seq reused, nothing stored lost")
    return 0


if __name__ == "__main__":
    sys.exit(main())
