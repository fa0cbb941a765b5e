#!/usr/bin/env python3
"""The mps2-an385 image against the real gateway, through the serial link and the bridge.

  mps2_an385_gateway.py --scenario NAME --source <repo> --build-dir <tree> --gateway <exe> --bridge <exe>
                        [--generator Ninja] [--seed N] [--noise-rate R]

Each scenario starts, in a temporary directory and on free 127.0.0.1 ports, a Mosquitto from
the shipped configuration, fieldlink-gateway on a real SQLite file, fieldlink-serial-bridge and
the image in qemu-system-arm with UART0 as a TCP server (`-serial tcp:...,server=on,wait=off`),
the bridge connecting to it (through tests/boards/serial_proxy.py where the scenario damages the
line). The image runs `mode=run` on a flash file; it prints `stored inc= boot= seq= ch= mono=
value=` for every reading once it is on its flash, and with `readings=N` ends only when every
reading is acked (its spool empty). Each scenario then compares the exact set of readings the
image printed with the rows in SQLite: none lost, none duplicated, every field equal (the value
to the bit).

Scenarios:
  end_to_end  one run of 150 readings.
  power_cut   QEMU SIGKILLed 4 times (after a pseudo-random number of stored lines, plus a
              pseudo-random delay) and restarted on the same flash file; a last run drains.
              Also: the same incarnation and the next boot after each restart, no seq printed
              twice, next_seq above every seq printed before.
  noise       the proxy flips, drops and inserts bytes in both directions at --noise-rate per
              byte each (fixed seed); the link resets on damage; the exact sets still match.
  cable       the line is cut (bytes lost both ways, connections open), then unplugged
              (connections closed and refused) while the image keeps sampling; plugged back,
              the backlog drains.
Exit codes: 0 pass, 1 fail, 77 skipped (no arm-none-eabi-gcc or qemu-system-arm or mosquitto).
"""

import argparse
import os
import random
import re
import signal
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[0] / "integration"))
import harness as h  # noqa: E402
import mps2_an385_boots as boots  # noqa: E402
from serial_proxy import CUT, PASS, UNPLUGGED, SerialProxy  # noqa: E402

DEVICE = "qemu-m3-0001"  # the image's device id
RUN_TIMEOUT_S = 60
STORED = re.compile(r"^stored inc=(?P<inc>[0-9a-f]{16}) boot=(?P<boot>\d+) seq=(?P<seq>\d+) ch=(?P<ch>\d+) "
                    r"mono=(?P<mono>\d+) value=(?P<value>[0-9a-f]{16})$")
RECOVERED = re.compile(r"^recovered inc=(?P<inc>[0-9a-f]{16}) boot=(?P<boot>\d+) next_seq=(?P<next>\d+) "
                       r"held=(?P<held>\d+) dropped=(?P<dropped>\d+) formatted=(?P<formatted>[01])")
DONE = re.compile(r"^done stored=(?P<stored>\d+) next_seq=(?P<next>\d+) held=(?P<held>\d+) "
                  r"acked_through=(?P<acked>\d+)")


class Image:
    """One boot of the image in QEMU, UART0 a TCP server on `uart_port`; semihosting output parsed
    line by line as it comes."""

    def __init__(self, elf, workdir, uart_port, words, name):
        self.argv = ["qemu-system-arm", "-M", "mps2-an385", "-nographic", "-monitor", "none",
                     "-chardev", "stdio,id=semihost", "-semihosting-config",
                     "enable=on,target=native,chardev=semihost",
                     "-serial", f"tcp:127.0.0.1:{uart_port},server=on,wait=off",
                     "-kernel", os.path.abspath(elf), "-append", " ".join(words)]
        self.workdir = workdir
        self.name = name
        self.lines = []
        self.stored = {}  # (inc, seq) -> (boot, ch, mono, value)
        self.order = []   # (inc, seq) in the order printed
        self.recovered = None
        self.done = None
        self.changed = threading.Condition()

    def start(self):
        self.proc = subprocess.Popen(self.argv, cwd=self.workdir, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        return self

    def _read(self):
        with open(Path(self.workdir) / f"{self.name}.out", "w") as log:
            for raw in self.proc.stdout:
                line = raw.rstrip("\n")
                log.write(raw)
                with self.changed:
                    self.lines.append(line)
                    if m := STORED.match(line):
                        key = (int(m["inc"], 16), int(m["seq"]))
                        value = struct.unpack(">d", bytes.fromhex(m["value"]))[0]
                        if key in self.stored:
                            raise AssertionError(f"{self.name}: seq {key} printed twice")
                        self.stored[key] = (int(m["boot"]), int(m["ch"]), int(m["mono"]), value)
                        self.order.append(key)
                    elif m := RECOVERED.match(line):
                        self.recovered = {k: (int(v, 16) if k == "inc" else int(v)) for k, v in m.groupdict().items()}
                    elif m := DONE.match(line):
                        self.done = {k: int(v) for k, v in m.groupdict().items()}
                    self.changed.notify_all()

    def wait_stored(self, count, timeout):
        deadline = time.monotonic() + timeout
        with self.changed:
            while len(self.stored) < count:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"{self.name}: {len(self.stored)} of {count} stored lines, then "
                                         f"{'exit ' + str(self.proc.returncode) if self.proc.poll() is not None else 'timeout'}:\n"
                                         + "\n".join(self.lines[-20:]))
                self.changed.wait(0.1)

    def wait_exit(self, timeout):
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            self.reader.join(5)
            raise AssertionError(f"{self.name}: did not finish within {timeout} s (not everything acked?):\n"
                                 + "\n".join(self.lines[-20:]))
        self.reader.join(10)
        return code

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.reader.join(10)

    def text(self):
        return "\n".join(self.lines)


class Chain:
    """Mosquitto, gateway and bridge in `workdir`; the bridge's line goes to `line_port`."""

    def __init__(self, args, workdir, line_port):
        self.workdir = workdir
        self.db = workdir / "fieldlink.db"
        self.broker = h.Mosquitto(workdir)
        self.gateway = h.Gateway(workdir, self.broker.port, self.db)
        self.bridge = h.Process("bridge", [args.bridge, "--broker", f"tcp://127.0.0.1:{self.broker.port}",
                                           "--line", f"tcp:127.0.0.1:{line_port}", "--log-level", "info",
                                           "--backoff-max-ms", "500"], workdir)

    def __enter__(self):
        self.broker.start()
        self.gateway.start()
        self.bridge.start()
        return self

    def __exit__(self, *exc):
        self.bridge.stop()
        self.gateway.stop()
        self.broker.stop()

    def logs(self):
        return "\n".join(f"--- {p.name} log (tail) ---\n{p.log()[-2500:]}" for p in (self.bridge, self.gateway))


def compare(printed, db, failures, may_be_unprinted=frozenset()):
    """printed: {(inc, seq): (boot, ch, mono, value)}. Every one in SQLite exactly once, with the same
    fields; nothing else in SQLite except keys in may_be_unprinted."""
    stored, _ = h.read_stored(db)
    stored = {(inc, seq): v for (device, inc, seq), v in stored.items() if device == DEVICE}
    # This device's rows only: another device's would look like duplicates.
    rows = h.query(db, "SELECT COUNT(*) FROM readings WHERE device = ?", DEVICE)[0][0]
    missing = sorted(printed.keys() - stored.keys())
    extra = sorted(stored.keys() - printed.keys() - set(may_be_unprinted))
    if missing:
        failures.append(f"{len(missing)} of {len(printed)} readings lost, e.g. {missing[:5]}")
    if extra:
        failures.append(f"{len(extra)} rows the image never printed, e.g. {extra[:5]}")
    if rows != len(stored):
        failures.append(f"{rows} rows for {len(stored)} keys: duplicates")
    differing = [k for k, v in printed.items() if k in stored and stored[k] != v]
    if differing:
        k = differing[0]
        failures.append(f"{len(differing)} readings stored with other fields, e.g. {k}: printed {printed[k]}, "
                        f"stored {stored[k]}")
    return stored


def check_drained(image, failures):
    code = image.proc.returncode
    if code != 0 or image.done is None:
        failures.append(f"{image.name}: exit {code}, done line {image.done}")
        return
    if image.done["held"] != 0 or image.done["acked"] != image.done["next"] - 1:
        failures.append(f"{image.name}: the spool did not end with everything acked: {image.done}")


def link_line(image):
    return next((l for l in image.lines if l.startswith("link ")), "no link line")


def scenario_end_to_end(args, elf, wd, failures):
    uart = h.free_port()
    with Chain(args, wd, uart) as chain:
        image = Image(elf, wd, uart, ["mode=run", "flash=flash.bin", "readings=150"], "image").start()
        image.wait_exit(RUN_TIMEOUT_S)
        check_drained(image, failures)
        stored = compare(image.stored, chain.db, failures)
        print(f"{len(image.stored)} readings printed, {len(stored)} rows; {link_line(image)}")
        if failures:
            print(image.text()[-3000:] + "\n" + chain.logs())


def scenario_power_cut(args, elf, wd, failures):
    rng = random.Random(args.seed)
    kills = [(rng.randint(5, 60), rng.uniform(0.0, 0.3)) for _ in range(4)]
    print(f"seed {args.seed}: kill after (stored lines, delay s) {[(k, round(d, 3)) for k, d in kills]}")
    uart = h.free_port()
    printed = {}
    unprinted_ok = set()
    incarnation, previous_boot = None, None
    with Chain(args, wd, uart) as chain:
        for index, plan in enumerate(kills + [None]):
            name = f"run{index + 1}"
            words = ["mode=run", "flash=flash.bin"] + (["readings=40"] if plan is None else [])
            image = Image(elf, wd, uart, words, name).start()
            if plan is None:
                image.wait_exit(RUN_TIMEOUT_S)
                check_drained(image, failures)
            else:
                image.wait_stored(plan[0], RUN_TIMEOUT_S)
                time.sleep(plan[1])
                image.kill()
            r = image.recovered
            if r is None:
                failures.append(f"{name}: no recovery line:\n{image.text()}")
                break
            if index == 0:
                incarnation = r["inc"]
                if r["formatted"] != 1:
                    failures.append(f"{name}: expected a fresh spool: {r}")
            else:
                if r["inc"] != incarnation or r["formatted"] != 0 or r["boot"] != previous_boot + 1:
                    failures.append(f"{name}: recovered {r}, expected incarnation {incarnation:016x}, "
                                    f"boot {previous_boot + 1}")
                if printed and r["next"] <= max(seq for _, seq in printed):
                    failures.append(f"{name}: next_seq {r['next']} reuses a seq printed before")
            reused = printed.keys() & image.stored.keys()
            if reused:
                failures.append(f"{name}: seqs printed in an earlier boot printed again: {sorted(reused)[:5]}")
            if plan is not None:
                # A kill between an append and its line leaves one reading stored but not printed.
                last = max((seq for _, seq in image.stored), default=r["next"] - 1)
                unprinted_ok.add((incarnation, last + 1))
            printed.update(image.stored)
            previous_boot = r["boot"]
            print(f"{name}: recovered boot={r['boot']} next_seq={r['next']} held={r['held']}; "
                  f"printed {len(image.stored)}" + (" (killed)" if plan else f"; {image.done}; {link_line(image)}"))
        stored = compare(printed, chain.db, failures, unprinted_ok)
        print(f"{len(printed)} readings printed over {len(kills) + 1} boots, {len(stored)} rows")
        if failures:
            print(chain.logs())


def scenario_noise(args, elf, wd, failures):
    uart = h.free_port()
    with SerialProxy(uart, noise_rate=args.noise_rate, seed=args.seed) as proxy, Chain(args, wd, proxy.port) as chain:
        image = Image(elf, wd, uart, ["mode=run", "flash=flash.bin", "readings=150", "ack_timeout=2000"],
                      "image").start()
        image.wait_exit(RUN_TIMEOUT_S)
        check_drained(image, failures)
        stored = compare(image.stored, chain.db, failures)
        damage = proxy.damage()
        print(f"noise rate {args.noise_rate} seed {args.seed}: damage {damage}; {len(image.stored)} readings printed, "
              f"{len(stored)} rows; {link_line(image)}")
        if sum(damage.values()) == 0:
            failures.append("the proxy damaged nothing: the test proved nothing")
        m = re.search(r"breaks=(\d+)", link_line(image))
        if not m or int(m[1]) == 0:
            failures.append("the link never broke: the damage did not reach it")
        if failures:
            print(image.text()[-3000:] + "\n" + chain.logs())


def scenario_cable(args, elf, wd, failures):
    uart = h.free_port()
    with SerialProxy(uart) as proxy, Chain(args, wd, proxy.port) as chain:
        image = Image(elf, wd, uart, ["mode=run", "flash=flash.bin", "readings=300", "ack_timeout=2000",
                                      "keepalive=5"], "image").start()
        image.wait_stored(20, RUN_TIMEOUT_S)
        for mode in (CUT, UNPLUGGED):
            # Wait for some acks first, so that the outage leaves a backlog behind delivered readings.
            h.wait_for(lambda: h.read_stored(chain.db)[1] > 0, 30, "first rows in SQLite")
            before = len(image.stored)
            proxy.set_mode(mode)
            image.wait_stored(before + 60, RUN_TIMEOUT_S)  # sampling goes on into the spool
            rows_during = h.read_stored(chain.db)[1]
            time.sleep(0.5)
            if h.read_stored(chain.db)[1] != rows_during:
                failures.append(f"rows still arriving with the line {mode}: the proxy did not cut it")
            proxy.set_mode(PASS)
            print(f"line {mode} while {len(image.stored) - before} readings were stored; plugged back")
        image.wait_exit(RUN_TIMEOUT_S)
        check_drained(image, failures)
        stored = compare(image.stored, chain.db, failures)
        print(f"{len(image.stored)} readings printed, {len(stored)} rows; {proxy.connections} line connections; "
              f"{link_line(image)}")
        if failures:
            print(image.text()[-3000:] + "\n" + chain.logs())


SCENARIOS = {"end_to_end": scenario_end_to_end, "power_cut": scenario_power_cut, "noise": scenario_noise,
             "cable": scenario_cable}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    boots.add_build_arguments(parser)
    parser.add_argument("--scenario", required=True, choices=sorted(SCENARIOS))
    parser.add_argument("--gateway", required=True)
    parser.add_argument("--bridge", required=True)
    parser.add_argument("--seed", type=int, default=385)
    parser.add_argument("--noise-rate", type=float, default=0.0003,
                        help="per byte and direction, the chance of each of flip, drop and insert")
    args = parser.parse_args()
    elf = boots.build_image(args, needs=("mosquitto",))
    if elf is None:
        return boots.SKIP
    h.GATEWAY = args.gateway
    failures = []
    started = time.monotonic()
    with h.workdir(f"an385-{args.scenario}") as wd:
        try:
            SCENARIOS[args.scenario](args, elf, wd, failures)
        except AssertionError as e:
            failures.append(str(e))
    print(f"{args.scenario}: {time.monotonic() - started:.1f} s")
    for failure in failures:
        print("FAIL: " + failure)
    if failures:
        return 1
    print(f"ok: {args.scenario}: every reading the image printed is in SQLite exactly once, with its value")
    return 0


if __name__ == "__main__":
    sys.exit(main())
