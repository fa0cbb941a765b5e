#!/usr/bin/env python3
"""fieldlink-conformance: checks a fieldlink device against the wire protocol v1 from the outside.

The checker plays the gateway. It starts a private Mosquitto on a free 127.0.0.1 port, starts the
device under test with the command after `--` ({host}, {port} and {device} in it are replaced),
subscribes to the device's …/up, …/status and …/telemetry topics, computes commit acks itself
and drives the device through phases: acks flowing, acks withheld, bad acks, a broker restart and
a crash. Only what the device puts on the wire is judged. Standard library only.
"""

import argparse
import getpass
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path


def _module_dir():
    # Source tree: beside this file. Installed: <prefix>/bin/fieldlink-conformance with the
    # modules in <prefix>/share/fieldlink/conformance.
    here = Path(__file__).resolve().parent
    for candidate in (here, here.parent / "share" / "fieldlink" / "conformance"):
        if (candidate / "wire.py").exists():
            return candidate
    return here


sys.path.insert(0, str(_module_dir()))
import mqtt_client as mqtt  # noqa: E402
import wire  # noqa: E402

HOST = "127.0.0.1"

CHECKS = [
    ("birth", "after CONNACK the device publishes an online status (§5) retained on …/status; it decodes, "
              "its firmware version is printable; its incarnation and boot are used by every later check"),
    ("batches_decode", "every payload on …/up decodes as a binary batch (§3) or JSON batch (§6), arrives at "
                       "QoS 1, carries the birth's incarnation and a boot not above the birth's"),
    ("contiguous", "the seqs received before the broker restart form one run from 1 (or from the first "
                   "batch's floor_seq, for a device with a backlog) with no gap; a seq received twice has "
                   "the same channel, mono_ms and value every time (whole session)"),
    ("acked_not_resent", "once the checker has acked watermark W, no batch received more than --grace-ms "
                         "later contains a seq <= W, and binary batches carry floor_seq >= W+1 (acks from "
                         "before a broker restart do not count after it)"),
    ("window", "with acks withheld, at most --window distinct batches above W arrive before the device's "
               "first resend (or before --ack-timeout-ms has passed)"),
    ("resend_after_withheld_ack", "still withholding, the device publishes a batch with first_seq W+1 "
                                  "again (it resends from its watermark); once acks resume it catches up "
                                  "and keeps producing"),
    ("stale_and_duplicate_acks", "with acks withheld at W and seqs up to M received, the checker sends ack W "
                                 "twice, an ack for M with another incarnation, an ack for M with a bad CRC, "
                                 "ack W-1 and ack 0; the device must ignore all of them: no seq <= W sent "
                                 "again, floor_seq not above W+1, a resend starts at W+1, and after real acks "
                                 "resume it advances and keeps producing"),
    ("reconnect_after_broker_restart", "with seqs W+1..M in flight the broker is killed (SIGKILL) and "
                                       "restarted on the same port; the device reconnects, publishes a new "
                                       "birth, sends W+1..M again and continues"),
    ("last_will", "the device is killed (SIGKILL); within 1.5 x --keepalive-s + 3 s the broker delivers "
                  "its offline status (the last will) with the birth's incarnation, and keeps it retained"),
    ("time_offset", "batches of the running boot received after the first ack carry flag bit 0; while acks "
                    "flow, mono_ms + wall_offset_ms of new readings is within --clock-tolerance-ms of the "
                    "checker's clock"),
    ("telemetry", "optional: every message on …/telemetry decodes (§5a) with the birth's incarnation and "
                  "boot, and acked_through never exceeds a watermark the checker really sent"),
]


# --- What was seen ------------------------------------------------------------------------

@dataclass
class Up:
    """One PUBLISH on …/up."""
    mono: float
    wall_ms: int
    phase: str
    qos: int
    size: int
    batch: object = None        # wire.Batch, or None when it did not decode
    error: str = None
    repeat: bool = False        # carries a seq the checker had received before
    new_seqs: frozenset = frozenset()


@dataclass
class StatusSeen:
    mono: float
    phase: str
    retain: bool
    source: str                 # "live" (our subscription) or "retained" (a fresh probe client)
    status: object = None       # wire.Status
    error: str = None


@dataclass
class TelemetrySeen:
    mono: float
    phase: str
    telemetry: object = None
    error: str = None


@dataclass
class AckSent:
    mono: float
    incarnation: int
    watermark: int
    kind: str                   # "commit" (a true statement) or "bad:<what>"


@dataclass
class Observations:
    ups: list = field(default_factory=list)
    statuses: list = field(default_factory=list)
    telemetry: list = field(default_factory=list)
    acks: list = field(default_factory=list)
    phases: dict = field(default_factory=dict)   # name -> facts, set when the phase ran to its end
    broker_kills: list = field(default_factory=list)
    aborted: str = None


@dataclass
class Config:
    device: str
    window: int = 4
    ack_timeout_s: float = 2.0
    keepalive_s: float = 2.0
    grace_s: float = 1.0
    clock_tolerance_ms: int = 5000
    start_timeout_s: float = 15.0
    reconnect_timeout_s: float = 20.0

    @property
    def withhold_s(self):
        # The device's ack timer starts at its last accepted ack; twice its timeout plus a margin
        # is a generous bound for the resend to show up.
        return 2 * self.ack_timeout_s + 2.0

    @property
    def catch_up_s(self):
        return 2 * self.ack_timeout_s + 5.0

    @property
    def steady_s(self):
        # Longer than one ack timeout, so a device that ignores acks shows it by resending.
        return self.ack_timeout_s + 2.0

    @property
    def will_s(self):
        return 1.5 * self.keepalive_s + 3.0


# --- Processes ----------------------------------------------------------------------------

def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def port_open(port):
    try:
        with socket.create_connection((HOST, port), timeout=0.2):
            return True
    except OSError:
        return False


class Broker:
    """A private Mosquitto on one loopback port that can be killed and started again."""

    def __init__(self, exe, workdir, port):
        self.exe, self.port = exe, port
        self.conf = Path(workdir) / "mosquitto.conf"
        self.log_path = Path(workdir) / "mosquitto.log"
        lines = [f"listener {port} {HOST}", "allow_anonymous true", "max_queued_messages 0",
                 "persistence false"]
        if os.geteuid() == 0:
            lines.append(f"user {getpass.getuser()}")  # else mosquitto switches to a user of its own
        self.conf.write_text("\n".join(lines) + "\n")
        self.proc = None

    def start(self, timeout=10.0):
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([self.exe, "-c", str(self.conf)], stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited with status {self.proc.returncode}; see {self.log_path}")
            if port_open(self.port):
                return
            time.sleep(0.05)
        raise RuntimeError(f"mosquitto did not listen on {HOST}:{self.port} within {timeout:.0f} s")

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


class Device:
    """The device under test: its own process group, output to files in the work folder."""

    def __init__(self, argv, workdir):
        self.argv = argv
        self.out_path = Path(workdir) / "device.out"
        self.err_path = Path(workdir) / "device.err"
        self.proc = None

    def start(self):
        with open(self.out_path, "ab") as out, open(self.err_path, "ab") as err:
            try:
                self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                             start_new_session=True)
            except OSError as e:
                raise RuntimeError(f"cannot start the device command {self.argv[0]!r}: {e}") from None

    def exit_status(self):
        return self.proc.poll() if self.proc else None

    def kill(self):
        # The whole group: a device may be a wrapper (a serial bridge, QEMU) with children.
        if self.proc and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=10)


# --- The gateway side ---------------------------------------------------------------------

class Gateway:
    """The checker's MQTT client: records everything, computes and publishes commit acks."""

    def __init__(self, device, port, obs):
        self.device, self.port, self.obs = device, port, obs
        self.topics = {k: wire.topic(device, k) for k in ("up", "ack", "status", "telemetry")}
        self.client = None
        self.acking = True
        self.phase = "birth"
        self.incarnation = None
        self.seen = set()       # every seq ever received (for "repeat")
        self.have = set()       # seqs counting towards the watermark
        self.watermark = 0
        self.max_seq = 0
        self.lost_link = None

    def connect(self, timeout=5.0):
        deadline = time.monotonic() + timeout
        while True:
            client = mqtt.Client(f"fieldlink-conformance-{os.getpid()}", HOST, self.port, keepalive_s=5)
            try:
                client.connect(timeout=2)
                client.subscribe([(self.topics["up"], 1), (self.topics["status"], 1),
                                  (self.topics["telemetry"], 1)])
                self.client, self.lost_link = client, None
                return
            except (OSError, mqtt.MqttError) as e:
                client.abort()
                if time.monotonic() > deadline:
                    raise RuntimeError(f"checker cannot connect to its broker: {e}") from None
                time.sleep(0.1)

    def close(self):
        if self.client:
            self.client.close()
            self.client = None

    def drop(self):
        if self.client:
            self.client.abort()
            self.client = None

    # --- events ---

    def pump(self, timeout, most=500):
        """Waits up to `timeout` seconds for an event, then handles it and up to `most` queued ones."""
        if self.client is None:
            time.sleep(timeout)
            return
        event = self.client.get(timeout)
        for _ in range(most):
            if event is None:
                return
            self.handle(event)
            event = self.client.get(0) if self.client else None
        if event is not None:
            self.handle(event)

    def handle(self, event):
        if isinstance(event, mqtt.Disconnected):
            self.lost_link = event.reason
            self.drop()
        elif isinstance(event, mqtt.Message):
            if event.topic == self.topics["up"]:
                self.on_up(event)
            elif event.topic == self.topics["status"]:
                self.on_status(event)
            elif event.topic == self.topics["telemetry"]:
                self.on_telemetry(event)

    def on_status(self, msg):
        seen = StatusSeen(msg.mono, self.phase, msg.retain, "live")
        try:
            seen.status = wire.decode_status(msg.payload)
            if seen.status.online and self.incarnation is None:
                self.incarnation = seen.status.incarnation
        except wire.WireError as e:
            seen.error = str(e)
        self.obs.statuses.append(seen)

    def on_telemetry(self, msg):
        seen = TelemetrySeen(msg.mono, self.phase)
        try:
            seen.telemetry = wire.decode_telemetry(msg.payload)
        except wire.WireError as e:
            seen.error = str(e)
        self.obs.telemetry.append(seen)

    def on_up(self, msg):
        up = Up(msg.mono, msg.wall_ms, self.phase, msg.qos, len(msg.payload))
        self.obs.ups.append(up)
        try:
            up.batch = wire.decode_up(msg.payload)
        except wire.WireError as e:
            up.error = str(e)
            return
        if self.incarnation is None:
            self.incarnation = up.batch.incarnation
        if up.batch.incarnation != self.incarnation:
            return
        seqs = set(up.batch.seqs())
        up.repeat = bool(seqs & self.seen)
        up.new_seqs = frozenset(seqs - self.seen)
        self.seen |= seqs
        self.have |= seqs
        self.max_seq = max(self.max_seq, up.batch.last_seq)
        self.watermark = max(self.watermark, up.batch.floor_seq - 1)
        while self.watermark + 1 in self.have:
            self.watermark += 1
        if self.acking:
            self.send_commit_ack()

    def forget_above(self, watermark):
        """As a gateway that had not committed them: seqs above `watermark` must arrive again."""
        self.have = {s for s in self.have if s <= watermark}
        self.watermark = min(self.watermark, watermark)

    # --- acks ---

    def send_ack(self, incarnation, watermark, kind, payload=None):
        if payload is None:
            payload = wire.encode_ack(incarnation, watermark, time.time_ns() // 1_000_000)
        if self.client is None:
            return
        try:
            self.client.publish(self.topics["ack"], payload, qos=0, retain=False)
        except OSError:
            return  # the reader thread reports the lost link
        self.obs.acks.append(AckSent(time.monotonic(), incarnation, watermark, kind))

    def send_commit_ack(self, kind="commit"):
        if self.incarnation is not None and self.watermark > 0:
            self.send_ack(self.incarnation, self.watermark, kind)


class PhaseAborted(Exception):
    pass


class Session:
    """Runs the phases against one device; fills an Observations."""

    def __init__(self, cfg, broker, device, gateway, log):
        self.cfg, self.broker, self.device, self.gw, self.log = cfg, broker, device, gateway, log
        self.obs = gateway.obs

    def wait(self, predicate, timeout):
        """Pumps events until predicate() holds (True) or `timeout` passes (False)."""
        deadline = time.monotonic() + timeout
        while True:
            if predicate():
                return True
            status = self.device.exit_status()
            if status is not None:
                raise PhaseAborted(f"the device exited with status {status} during phase {self.gw.phase}")
            if self.gw.lost_link is not None:
                raise PhaseAborted(f"the checker lost its broker connection: {self.gw.lost_link}")
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.gw.pump(min(left, 0.05))

    def begin(self, name):
        self.gw.phase = name
        self.log(f"phase {name}")
        return {"start": time.monotonic()}

    def run(self):
        try:
            for phase in (self.phase_birth, self.phase_steady, self.phase_withhold, self.phase_stale,
                          self.phase_reconnect, self.phase_last_will):
                phase()
        except (PhaseAborted, RuntimeError) as e:
            self.obs.aborted = str(e)

    def ups_since(self, t):
        return [u for u in self.obs.ups if u.mono > t and u.batch is not None]

    def first_repeat_since(self, t):
        return next((u for u in self.ups_since(t) if u.repeat), None)

    def catch_up(self, info):
        """Resumes acking and waits until the watermark covers everything seen and new seqs arrive."""
        self.gw.acking = True
        info["resumed"] = time.monotonic()
        info["resume_max"] = target = self.gw.max_seq
        self.gw.send_commit_ack()
        self.wait(lambda: self.gw.watermark >= target and self.gw.max_seq > target, self.cfg.catch_up_s)
        info["watermark_after"], info["max_after"] = self.gw.watermark, self.gw.max_seq

    def withhold_until_unacked(self):
        """Stops acking and waits until the device has filled its window above the watermark (or half
        an ack timeout has passed, or at least one batch is there), so that the broker has had time
        to PUBACK those batches: what the device does with them afterwards is what is being tested."""
        self.gw.acking = False
        watermark, since = self.gw.watermark, time.monotonic()
        beyond = lambda: len({u.batch.first_seq for u in self.ups_since(since)  # noqa: E731
                              if u.batch.first_seq > watermark})
        self.wait(lambda: beyond() >= self.cfg.window, self.cfg.ack_timeout_s / 2)
        self.wait(lambda: self.gw.max_seq > watermark, self.cfg.ack_timeout_s)
        return watermark

    # --- phases ---

    def phase_birth(self):
        info = self.begin("birth")
        self.device.start()
        online = lambda: any(s.status is not None and s.status.online for s in self.obs.statuses)  # noqa: E731
        if not self.wait(online, self.cfg.start_timeout_s) and not self.obs.ups:
            raise PhaseAborted(f"the device published nothing within {self.cfg.start_timeout_s:.0f} s")
        info["retained"] = self.probe_retained()
        self.obs.phases["birth"] = info

    def probe_retained(self):
        try:
            msg = mqtt.fetch_retained(self.broker.port, self.gw.topics["status"],
                                      f"fieldlink-conformance-probe-{os.getpid()}")
        except (OSError, mqtt.MqttError) as e:
            raise RuntimeError(f"the probe for the retained status could not use the broker: {e}") from None
        if msg is None:
            return None
        seen = StatusSeen(msg.mono, self.gw.phase, msg.retain, "retained")
        try:
            seen.status = wire.decode_status(msg.payload)
        except wire.WireError as e:
            seen.error = str(e)
        return seen

    def phase_steady(self):
        info = self.begin("steady")
        self.gw.acking = True
        self.gw.send_commit_ack()
        self.wait(lambda: False, self.cfg.steady_s)
        info["end"] = time.monotonic()
        self.obs.phases["steady"] = info

    def phase_withhold(self):
        info = self.begin("withhold")
        self.gw.acking = False
        info["stopped"] = time.monotonic()
        info["watermark"] = self.gw.watermark
        self.wait(lambda: self.first_repeat_since(info["stopped"]) is not None, self.cfg.withhold_s)
        self.catch_up(info)
        self.obs.phases["withhold"] = info

    def phase_stale(self):
        info = self.begin("stale")
        info["watermark"] = w = self.withhold_until_unacked()
        info["max_seen"] = m = self.gw.max_seq
        inc = self.gw.incarnation
        self.gw.send_ack(inc, w, "duplicate")  # w, not gw.watermark: that may have grown since
        self.gw.send_ack(inc, w, "duplicate")
        other = inc ^ 0xA5A5A5A5A5A5A5A5
        self.gw.send_ack(other, m, "bad:other-incarnation")
        corrupt = bytearray(wire.encode_ack(inc, m, time.time_ns() // 1_000_000))
        corrupt[-1] ^= 0xFF
        self.gw.send_ack(inc, m, "bad:undecodable", bytes(corrupt))
        if w >= 2:
            self.gw.send_ack(inc, w - 1, "bad:older")
        self.gw.send_ack(inc, 0, "bad:zero")
        info["bad_sent"] = t = time.monotonic()
        self.wait(lambda: self.first_repeat_since(t) is not None, self.cfg.withhold_s)
        self.catch_up(info)
        self.obs.phases["stale"] = info

    def phase_reconnect(self):
        info = self.begin("reconnect")
        info["watermark"] = w = self.withhold_until_unacked()
        info["max_seen"] = self.gw.max_seq
        info["killed"] = time.monotonic()
        self.broker.kill()
        self.obs.broker_kills.append(info["killed"])
        self.gw.drop()
        self.gw.forget_above(w)
        time.sleep(1.0)
        self.broker.start()
        self.gw.connect()
        info["restarted"] = t = time.monotonic()
        self.gw.acking = True
        target = info["max_seen"]
        births = lambda: any(s.mono > t and s.status is not None and s.status.online  # noqa: E731
                             for s in self.obs.statuses)
        self.wait(lambda: births() and self.gw.watermark >= target and self.gw.max_seq > target,
                  self.cfg.reconnect_timeout_s)
        self.obs.phases["reconnect"] = info

    def phase_last_will(self):
        info = self.begin("last_will")
        info["killed"] = t = time.monotonic()
        self.device.kill()
        offline = lambda: any(s.mono > t and s.status is not None and not s.status.online  # noqa: E731
                              for s in self.obs.statuses)
        deadline = time.monotonic() + self.cfg.will_s
        while not offline() and time.monotonic() < deadline and self.gw.client is not None:
            self.gw.pump(0.05)
        info["retained"] = self.probe_retained()
        self.obs.phases["last_will"] = info


# --- Checks: pure functions of the observations -------------------------------------------

class Fail(Exception):
    pass


def need(obs, phase):
    info = obs.phases.get(phase)
    if info is None:
        raise Fail(f"not run: {obs.aborted or 'its phase did not complete'}")
    return info


def seq_ranges(seqs, limit=6):
    """'3..7, 9, 12..14' for a set of ints (the first `limit` runs)."""
    runs, out = [], sorted(seqs)
    for s in out:
        if runs and s == runs[-1][1] + 1:
            runs[-1][1] = s
        else:
            runs.append([s, s])
    text = ", ".join(f"{a}..{b}" if a != b else f"{a}" for a, b in runs[:limit])
    return text + (f", ... ({len(runs)} runs)" if len(runs) > limit else "")


def birth_status(obs):
    """The first online status seen live, or None."""
    return next((s.status for s in obs.statuses if s.source == "live" and s.status and s.status.online), None)


def device_incarnation(obs):
    birth = birth_status(obs)
    if birth:
        return birth.incarnation
    return next((u.batch.incarnation for u in obs.ups if u.batch), None)


def own_ups(obs):
    """Decoded batches of the device's incarnation."""
    inc = device_incarnation(obs)
    return [u for u in obs.ups if u.batch is not None and u.batch.incarnation == inc]


def commit_acks(obs):
    return [a for a in obs.acks if not a.kind.startswith("bad:")]


def check_birth(obs, cfg):
    info = need(obs, "birth")
    live = [s for s in obs.statuses if s.source == "live"]
    if not live:
        raise Fail(f"expected a status message on {wire.topic(cfg.device, 'status')} after connecting, "
                   f"saw none within {cfg.start_timeout_s:.0f} s")
    first = live[0]
    if first.error:
        raise Fail(f"expected a status message (§5), the first one did not decode: {first.error}")
    if not first.status.online:
        raise Fail("expected the first status to be online (state 1), it was offline")
    retained = info.get("retained")
    if retained is None:
        raise Fail("expected the broker to keep the birth retained, a new subscriber got no retained status "
                   "(publish it with retain=1)")
    if retained.error or retained.status != first.status:
        raise Fail(f"expected the retained status to be the birth, got {retained.error or retained.status}")
    s = first.status
    return (f"online, incarnation {s.incarnation:016x}, boot {s.boot}, firmware {s.firmware_version!r}; "
            f"retained copy (retain=1) matches")


def check_batches_decode(obs, cfg):
    need(obs, "birth")
    if not obs.ups:
        raise Fail(f"expected batches on {wire.topic(cfg.device, 'up')}, saw none")
    birth = birth_status(obs)
    inc = device_incarnation(obs)
    problems = []
    for i, u in enumerate(obs.ups):
        where = f"message {i + 1} ({u.size} bytes, phase {u.phase})"
        if u.error:
            problems.append(f"{where} did not decode: {u.error}")
            continue
        if u.qos != 1:
            problems.append(f"{where} arrived at QoS {u.qos}, expected QoS 1")
        if u.batch.incarnation != inc:
            problems.append(f"{where} has incarnation {u.batch.incarnation:016x}, the birth said {inc:016x}")
        if birth and u.batch.boot > birth.boot:
            problems.append(f"{where} has boot {u.batch.boot}, above the birth's boot {birth.boot}")
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise Fail("; ".join(problems[:3]) + more)
    json_count = sum(1 for u in obs.ups if u.batch.form == "json")
    return (f"{len(obs.ups)} batches decode ({json_count} JSON), incarnation {inc:016x}, QoS 1, "
            f"floor_seq <= first_seq, flags valid")


def check_contiguous(obs, cfg):
    need(obs, "steady")
    ups = own_ups(obs)
    cut = obs.broker_kills[0] if obs.broker_kills else float("inf")
    before = [u for u in ups if u.mono < cut]
    if not before:
        raise Fail("expected batches while acks flowed, saw none of the device's incarnation")
    seqs = set()
    for u in before:
        seqs.update(u.batch.seqs())
    first = min(before, key=lambda u: u.batch.first_seq)
    lo, hi = min(seqs), max(seqs)
    if lo != 1 and first.batch.floor_seq != lo:
        raise Fail(f"expected the first seq to be 1 (or the floor_seq of its batch), the lowest was {lo} "
                   f"with floor_seq {first.batch.floor_seq}")
    gaps = set(range(lo, hi + 1)) - seqs
    if gaps:
        raise Fail(f"expected one run {lo}..{hi} with no gaps, missing {seq_ranges(gaps)}")
    contents, twice, differ = {}, 0, []
    for u in ups:
        for seq, record in zip(u.batch.seqs(), u.batch.records):
            key = (u.batch.boot,) + record.identity()
            if seq in contents:
                twice += 1
                if contents[seq] != key and len(differ) < 3:
                    differ.append(f"seq {seq}: first {_describe(contents[seq])}, then {_describe(key)}")
            else:
                contents[seq] = key
    if differ:
        raise Fail("expected a seq sent again to be identical, " + "; ".join(differ))
    return f"seqs {lo}..{hi} in {len(before)} batches, no gap; {twice} repeated readings, all identical"


def _describe(key):
    boot, channel, mono, value = key
    return f"boot {boot} channel {channel} mono_ms {mono} value {struct.unpack('<d', value)[0]!r}"


def acked_before(acks, t, kills):
    """Highest commit-ack watermark published at or before t that a device can be held to:
    acks from before a broker kill that lies between them and t may have been lost."""
    last_kill = max((k for k in kills if k <= t), default=None)
    valid = [a.watermark for a in acks if a.mono <= t and (last_kill is None or a.mono > last_kill)]
    return max(valid, default=0)


def check_acked_not_resent(obs, cfg):
    need(obs, "steady")
    acks = commit_acks(obs)
    if not acks:
        raise Fail("expected the checker to ack at least once, it never had a watermark to ack")
    problems = []
    for u in own_ups(obs):
        w = acked_before(acks, u.mono - cfg.grace_s, obs.broker_kills)
        if w == 0:
            continue
        b = u.batch
        if b.first_seq <= w:
            problems.append(f"seqs {b.first_seq}..{min(b.last_seq, w)} sent again (phase {u.phase}) although "
                            f"watermark {w} was acked more than {cfg.grace_s:g} s earlier")
        elif b.floor_explicit and b.floor_seq < w + 1:
            problems.append(f"batch {b.first_seq}..{b.last_seq} (phase {u.phase}) has floor_seq {b.floor_seq}, "
                            f"expected >= {w + 1} after ack {w}")
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise Fail("; ".join(problems[:3]) + more)
    return (f"{len(acks)} commit acks up to watermark {max(a.watermark for a in acks)}; no acked seq sent again "
            f"after {cfg.grace_s:g} s, floor_seq followed the acks")


def check_window(obs, cfg):
    info = need(obs, "withhold")
    w, t0 = info["watermark"], info["stopped"]
    ups = [u for u in own_ups(obs) if t0 < u.mono <= info["resumed"]]
    first_repeat = next((u for u in ups if u.repeat), None)
    cutoff = min(first_repeat.mono if first_repeat else float("inf"), t0 + cfg.ack_timeout_s)
    beyond = sorted({u.batch.first_seq for u in ups if u.mono < cutoff and not u.repeat and u.batch.first_seq > w})
    if not beyond:
        raise Fail(f"expected batches above the watermark {w} while acks were withheld, saw none")
    if len(beyond) > cfg.window:
        raise Fail(f"expected at most {cfg.window} batches beyond the acked watermark {w} before a resend, "
                   f"saw {len(beyond)} (first_seq {', '.join(map(str, beyond[:8]))}"
                   f"{', ...' if len(beyond) > 8 else ''})")
    return f"{len(beyond)} batches beyond watermark {w} while acks were withheld (window {cfg.window})"


def check_resend(obs, cfg):
    info = need(obs, "withhold")
    w, t0 = info["watermark"], info["stopped"]
    ups = [u for u in own_ups(obs) if t0 < u.mono <= info["resumed"]]
    resend = next((u for u in ups if u.repeat and u.batch.first_seq == w + 1), None)
    if resend is None:
        repeats = [u.batch.first_seq for u in ups if u.repeat]
        news = [u.batch.first_seq for u in ups if not u.repeat]
        seen = (f"resends from first_seq {', '.join(map(str, repeats[:5]))}" if repeats else
                f"only new batches (first_seq {', '.join(map(str, news[:6]))}{', ...' if len(news) > 6 else ''}): "
                f"it does not resend from its watermark" if news else "no batch at all")
        raise Fail(f"expected the device to send first_seq {w + 1} again within {cfg.withhold_s:g} s of the "
                   f"last ack {w} (ack timeout {cfg.ack_timeout_s * 1000:.0f} ms), saw {seen}")
    target = info["resume_max"]
    if info["watermark_after"] < target or info["max_after"] <= target:
        raise Fail(f"resent from {w + 1}, but after acks resumed the watermark reached {info['watermark_after']} "
                   f"and the highest seq {info['max_after']}: expected >= {target} and new readings "
                   f"within {cfg.catch_up_s:g} s")
    return (f"first_seq {w + 1} sent again {resend.mono - t0:.1f} s after acks stopped; after acks resumed "
            f"watermark {info['watermark_after']} (was {target}), still producing")


def check_stale(obs, cfg):
    info = need(obs, "stale")
    w, m, t = info["watermark"], info["max_seen"], info["bad_sent"]
    ups = [u for u in own_ups(obs) if u.mono > t]
    withheld = [u for u in ups if u.mono <= info["resumed"]]
    for u in ups:
        if u.mono > t + cfg.grace_s and u.batch.first_seq <= w:
            raise Fail(f"expected no seq <= {w} again after the bad acks, got {u.batch.first_seq}..{u.batch.last_seq} "
                       f"(it took the older ack {w - 1} or ack 0 as real)")
    for u in withheld:
        if u.mono > t + cfg.grace_s and u.batch.floor_explicit and u.batch.floor_seq > w + 1:
            raise Fail(f"expected floor_seq <= {w + 1} while the only valid ack was {w}, got {u.batch.floor_seq} "
                       f"(it took the other-incarnation or undecodable ack for {m} as real)")
    repeat = next((u for u in withheld if u.repeat), None)
    if repeat is not None and repeat.batch.first_seq != w + 1:
        raise Fail(f"expected the resend to start at {w + 1} (the only valid watermark is {w}), it started at "
                   f"{repeat.batch.first_seq}")
    target = info["resume_max"]
    if info["watermark_after"] < target or info["max_after"] <= target:
        raise Fail(f"expected the device to keep working after the bad acks: once real acks resumed the "
                   f"watermark reached {info['watermark_after']} and the highest seq {info['max_after']}, "
                   f"expected >= {target} and new readings within {cfg.catch_up_s:g} s")
    kinds = ", ".join(a.kind[4:] for a in obs.acks if a.kind.startswith("bad:"))
    resent = f"resent from {w + 1}" if repeat else "no resend while withheld"
    return (f"ignored ack {w} twice and bad acks ({kinds}); {resent}; advanced to {info['watermark_after']} "
            f"after real acks")


def check_reconnect(obs, cfg):
    info = need(obs, "reconnect")
    w, m, t = info["watermark"], info["max_seen"], info["restarted"]
    if m <= w:
        raise Fail(f"expected batches above watermark {w} in flight before the broker was killed, saw none")
    birth = next((s for s in obs.statuses if s.mono > t and s.status and s.status.online), None)
    if birth is None:
        raise Fail(f"expected a new online status after the broker restart, saw none within "
                   f"{cfg.reconnect_timeout_s:g} s")
    after = [u for u in own_ups(obs) if u.mono > t]
    resent = set()
    for u in after:
        resent.update(u.batch.seqs())
    missing = set(range(w + 1, m + 1)) - resent
    if missing:
        raise Fail(f"expected seqs {w + 1}..{m} (unacked when the broker died) to be sent again after the "
                   f"reconnect, missing {seq_ranges(missing)}")
    highest = max(resent)
    if highest <= m:
        raise Fail(f"expected new readings after the reconnect, the highest seq stayed {highest}")
    return (f"new birth {birth.mono - t:.1f} s after the restart; seqs {w + 1}..{m} sent again; continued "
            f"to seq {highest}")


def check_last_will(obs, cfg):
    info = need(obs, "last_will")
    inc = device_incarnation(obs)
    t = info["killed"]
    offline = next((s for s in obs.statuses if s.mono > t and s.status and not s.status.online), None)
    if offline is None:
        raise Fail(f"expected an offline status (the last will) within {cfg.will_s:g} s of SIGKILL, saw none")
    if offline.status.incarnation != inc:
        raise Fail(f"expected the last will for incarnation {inc:016x}, got {offline.status.incarnation:016x}")
    retained = info.get("retained")
    if retained is None or retained.error or retained.status.online:
        got = "none" if retained is None else retained.error or "the online birth"
        raise Fail(f"expected the broker to keep the offline status retained (will retain flag), a new "
                   f"subscriber got {got}")
    return f"offline status {offline.mono - t:.1f} s after SIGKILL, same incarnation; retained (retain=1)"


def check_time_offset(obs, cfg):
    steady = need(obs, "steady")
    acks = commit_acks(obs)
    if not acks:
        raise Fail("expected at least one ack to set the device's clock offset, none was sent")
    since = acks[0].mono + cfg.grace_s
    birth = birth_status(obs)
    boot = birth.boot if birth else None
    ups = [u for u in own_ups(obs) if u.mono > since and (boot is None or u.batch.boot == boot)]
    unsynced = [u for u in ups if not u.batch.offset_known]
    if unsynced:
        u = unsynced[0]
        raise Fail(f"expected flag bit 0 (offset known) on batches after the first ack, {len(unsynced)} of "
                   f"{len(ups)} lack it, e.g. first_seq {u.batch.first_seq} in phase {u.phase}")
    worst, checked = 0, 0
    for u in ups:
        if not (steady["start"] < u.mono <= steady["end"]):
            continue
        for seq, record in zip(u.batch.seqs(), u.batch.records):
            if seq in u.new_seqs:
                checked += 1
                delta = u.wall_ms - (record.mono_ms + u.batch.wall_offset_ms)
                worst = max(worst, abs(delta))
                if abs(delta) > cfg.clock_tolerance_ms:
                    raise Fail(f"expected mono_ms + wall_offset_ms within {cfg.clock_tolerance_ms} ms of the "
                               f"checker's clock, seq {seq} is off by {delta} ms")
    if checked == 0:
        raise Fail("expected new readings after the first ack while acks flowed, saw none to check")
    return (f"{len(ups)} batches after the first ack carry the offset; {checked} new readings within "
            f"{worst} ms of the checker's clock")


def check_telemetry(obs, cfg):
    need(obs, "birth")
    if not obs.telemetry:
        return "none published (optional)"
    birth = birth_status(obs)
    acks = commit_acks(obs)
    for i, seen in enumerate(obs.telemetry):
        where = f"telemetry message {i + 1} (phase {seen.phase})"
        if seen.error:
            raise Fail(f"{where} did not decode: {seen.error}")
        t = seen.telemetry
        if birth and (t.incarnation, t.boot) != (birth.incarnation, birth.boot):
            raise Fail(f"{where}: expected incarnation {birth.incarnation:016x} boot {birth.boot}, got "
                       f"{t.incarnation:016x} boot {t.boot}")
        sent = max((a.watermark for a in acks if a.mono <= seen.mono), default=0)
        if t.acked_through > sent:
            raise Fail(f"{where}: acked_through {t.acked_through} is above every watermark the checker sent "
                       f"({sent}): it took a bad ack as real")
    return f"{len(obs.telemetry)} messages decode, acked_through never above the checker's acks"


CHECK_FUNCTIONS = {
    "birth": check_birth,
    "batches_decode": check_batches_decode,
    "contiguous": check_contiguous,
    "acked_not_resent": check_acked_not_resent,
    "window": check_window,
    "resend_after_withheld_ack": check_resend,
    "stale_and_duplicate_acks": check_stale,
    "reconnect_after_broker_restart": check_reconnect,
    "last_will": check_last_will,
    "time_offset": check_time_offset,
    "telemetry": check_telemetry,
}


def evaluate(obs, cfg):
    """[(name, passed, detail)] in the order of CHECKS."""
    results = []
    for name, _ in CHECKS:
        try:
            results.append((name, True, CHECK_FUNCTIONS[name](obs, cfg)))
        except Fail as e:
            results.append((name, False, str(e)))
        except Exception as e:  # a checker bug must not hide the other results
            results.append((name, False, f"internal error in the checker: {e!r}"))
    return results


# --- Command line -------------------------------------------------------------------------

def help_epilog():
    lines = [
        "Pass the device the same window, ack timeout and keep-alive as the checker. The phases run in",
        "one device session, each with a bounded wait: birth; acks flowing (ack timeout + 2 s); acks",
        "withheld until a resend; bad acks; broker killed and restarted; device killed.",
        "",
        "checks (one report line each, `PASS name: detail` or `FAIL name: expected ..., saw ...`,",
        "then `N passed, N failed`):"]
    for name, text in CHECKS:
        lines.append(f"  {name}")
        lines += textwrap.wrap(text, 96, initial_indent="      ", subsequent_indent="      ")
    lines += [
        "",
        "The device command follows `--`; {host}, {port} and {device} in it are replaced. Its stdin is",
        "/dev/null and its output goes to device.out / device.err in a temporary folder, which is removed",
        "when every check passes (kept, and its path printed, when one fails; always kept with --keep).",
        "Exit status: 0 when every check passes, 1 when one fails, 2 for a usage or setup error.",
        "",
        "example:",
        "  fieldlink-conformance --device-id dut-1 --window 4 --ack-timeout-ms 2000 -- \\",
        "    fieldlink-reader --device {device} --broker {host}:{port} --window 4 --ack-timeout 2000 \\",
        "    --keepalive 2 --period 20 --channels 2",
    ]
    return "\n".join(lines)


def parse_args(argv):
    if "--" in argv:
        split = argv.index("--")
        own, command = argv[:split], argv[split + 1:]
    else:
        own, command = argv, []
    p = argparse.ArgumentParser(
        prog="fieldlink-conformance", formatter_class=argparse.RawDescriptionHelpFormatter,
        usage="%(prog)s --device-id ID [options] -- DEVICE-COMMAND...",
        description=__doc__.split("\n", 1)[1].strip(), epilog=help_epilog())
    p.add_argument("--device-id", required=True, metavar="ID",
                   help="the device id in its topics (1-32 of A-Z a-z 0-9 _ -)")
    p.add_argument("--window", type=int, default=4, metavar="N", help="batches the device may have beyond the ack (4)")
    p.add_argument("--ack-timeout-ms", type=int, default=2000, metavar="MS",
                   help="the device's ack timeout: it resends after this long without progress (2000)")
    p.add_argument("--keepalive-s", type=float, default=2.0, metavar="S", help="the device's MQTT keep-alive (2)")
    p.add_argument("--grace-ms", type=int, default=1000, metavar="MS",
                   help="batches this soon after an ack may still be in flight from before it (1000)")
    p.add_argument("--clock-tolerance-ms", type=int, default=5000, metavar="MS",
                   help="largest allowed |checker clock - (mono_ms + wall_offset_ms)| of a new reading (5000)")
    p.add_argument("--start-timeout-s", type=float, default=15.0, metavar="S",
                   help="time the device has to connect and publish its birth (15)")
    p.add_argument("--reconnect-timeout-s", type=float, default=20.0, metavar="S",
                   help="time the device has to reconnect and resend after the broker restart (20)")
    p.add_argument("--mosquitto", default="mosquitto", metavar="PATH",
                   help="the Mosquitto broker binary (default: mosquitto on PATH)")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder with the logs")
    p.add_argument("-v", "--verbose", action="store_true", help="print the phases on stderr as they run")
    args = p.parse_args(own)
    if not command:
        p.error("no device command: put it after --")
    if not wire.is_valid_device_id(args.device_id):
        p.error(f"invalid device id {args.device_id!r}")
    if args.window < 1 or args.ack_timeout_ms < 1 or args.keepalive_s <= 0:
        p.error("--window, --ack-timeout-ms and --keepalive-s must be positive")
    exe = shutil.which(args.mosquitto)
    if exe is None:
        p.error(f"mosquitto not found: {args.mosquitto} (install it or pass --mosquitto PATH)")
    args.mosquitto = exe
    args.command = command
    return args


def device_argv(command, port, device):
    return [a.replace("{host}", HOST).replace("{port}", str(port)).replace("{device}", device) for a in command]


def write_trace(obs, path):
    """Everything seen and sent, in time order, for a person reading a failure."""
    t0 = min([x.mono for x in obs.ups + obs.statuses + obs.acks] or [0])
    rows = []
    for u in obs.ups:
        b = u.batch
        what = (f"up   {u.error}" if b is None else
                f"up   seq {b.first_seq}..{b.last_seq} floor {b.floor_seq} boot {b.boot} "
                f"offset {b.wall_offset_ms if b.offset_known else '-'} inc {b.incarnation:016x}"
                f"{' repeat' if u.repeat else ''} qos {u.qos}")
        rows.append((u.mono, u.phase, what))
    for s in obs.statuses:
        what = s.error or (f"{'online' if s.status.online else 'offline'} inc {s.status.incarnation:016x} "
                           f"boot {s.status.boot}")
        rows.append((s.mono, s.phase, f"status ({s.source}, retain {int(s.retain)}) {what}"))
    for a in obs.acks:
        rows.append((a.mono, "", f"ack  watermark {a.watermark} inc {a.incarnation:016x} {a.kind}"))
    for k in obs.broker_kills:
        rows.append((k, "", "broker killed"))
    with open(path, "w") as f:
        for mono, phase, what in sorted(rows, key=lambda r: r[0]):
            f.write(f"{mono - t0:9.3f} {phase:10} {what}\n")


def print_tail(path, lines=10):
    try:
        tail = path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return
    if tail:
        print(f"last lines of {path.name}:")
        for line in tail:
            print(f"  {line}")


def report(results, out):
    for name, passed, detail in results:
        print(f"{'PASS' if passed else 'FAIL'} {name}: {detail}", file=out)
    passed = sum(1 for _, ok, _ in results if ok)
    print(f"{passed} passed, {len(results) - passed} failed", file=out)
    return passed == len(results)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    cfg = Config(args.device_id, args.window, args.ack_timeout_ms / 1000, args.keepalive_s, args.grace_ms / 1000,
                 args.clock_tolerance_ms, args.start_timeout_s, args.reconnect_timeout_s)

    def log(text):
        if args.verbose:
            print(f"fieldlink-conformance: {text}", file=sys.stderr, flush=True)

    workdir = Path(tempfile.mkdtemp(prefix="fieldlink-conformance-"))
    obs = Observations()
    broker = device = gateway = None
    ok = False
    try:
        port = free_port()
        broker = Broker(args.mosquitto, workdir, port)
        argv = device_argv(args.command, port, cfg.device)
        print(f"fieldlink-conformance: device {cfg.device}, window {cfg.window}, ack timeout "
              f"{args.ack_timeout_ms} ms, keep-alive {cfg.keepalive_s:g} s, broker {HOST}:{port}")
        print(f"device command: {' '.join(argv)}")
        broker.start()
        gateway = Gateway(cfg.device, port, obs)
        gateway.connect()
        device = Device(argv, workdir)
        Session(cfg, broker, device, gateway, log).run()
    except RuntimeError as e:
        obs.aborted = str(e)
    finally:
        if device:
            device.kill()
        if gateway:
            gateway.close()
        if broker:
            broker.kill()
    try:
        if obs.aborted:
            print(f"aborted: {obs.aborted}")
        ok = report(evaluate(obs, cfg), sys.stdout)
        if not ok or args.keep:
            write_trace(obs, workdir / "trace.txt")
            print(f"logs: {workdir} (trace.txt, device.out, device.err, mosquitto.log)")
            print_tail(workdir / "device.err")
    finally:
        if ok and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
