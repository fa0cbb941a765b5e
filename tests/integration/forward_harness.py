"""Helpers for the store-and-forward tests (Python 3 standard library only).

    readers -> local Mosquitto -> fieldlink-gateway -> SQLite -> forwarder -> upstream

What is here:

- ForwardGateway: the real gateway started with `--config FILE`, the file written from the
  [[upstream]] tables a test passes in.
- UpstreamBroker: a second private Mosquitto (its own port, work folder and config), the MQTT
  upstream; Receiver: a small MQTT 3.1.1 subscriber (its own process, this file run as a
  script) with a persistent session that appends every payload it gets, with its arrival
  order and time, to a file; it PUBACKs a message only after writing it.
- decode_payload: the forwarded batch of docs/protocol.md section 10 (binary, JSON, either
  inside a zstd frame; zstd through the `zstd` command-line tool), written from the document.
- read_forwarded / read_postgres: the upstream's readings as
  {(gateway, device, incarnation, seq): (boot, channel, mono_ms, unix_ms, value)}.
- read_local: the same shape from the gateway's SQLite (harness.read_stored plus unix_ms).
- assert_forwarded (assert_mqtt_forwarded, assert_postgres_forwarded): upstream set == SQLite
  set, keys and every field, zero lost; PostgreSQL also zero duplicates (row count == distinct
  keys); MQTT duplicates counted, and assert_duplicates_in_flight checks that each one lies
  where chunks were in flight at a break (in_flight_spans, from the cursor saved then).
- settle_chain: readers drained (exit 0), harness.assert_exactly_once, cursors at the last row.
- cursor / wait_forwarded / wait_received: bounded waits on the durable cursor and the receiver.
- DelayProxy: a link with latency, so that a test can strike while an answer is in flight.

No timing is asserted anywhere; every wait has a limit and fails naming what it waited for.
"""

import bisect
import contextlib
import getpass
import json
import os
import re
import shutil
import socket
import sqlite3
import struct
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import harness as h

GATEWAY_ID = "gw-test"
FORWARD_TOPIC_FILTER = "fieldlink/v1/+/+/forward"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
BINARY_HEADER = b"\x46\x4c\x01\x05"
RECORD = struct.Struct("<QQIBBQqdq")  # 54 bytes, docs/protocol.md section 10
assert RECORD.size == 54

# Reader load shared by the tests: small batches so that chunks interleave devices.
LOAD = ["--channels", "3", "--period", "20", "--batch-size", "32", "--window", "4",
        "--ack-timeout", "2000", "--drain-timeout", "120"]


def log(message):
    print(message, file=sys.stderr, flush=True)


# --- the gateway -------------------------------------------------------------------------

def toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    return json.dumps(str(v))  # a TOML basic string for what the tests use


def gateway_toml(broker_port, db, upstreams, gateway_id=GATEWAY_ID, stats_interval_s=1, sections=None):
    """The gateway's TOML file: [gateway], [mqtt], [database], [log], extra `sections`
    ({"pipeline": {...}}) and one [[upstream]] table per dict in `upstreams`."""
    tables = {
        "gateway": {"id": gateway_id},
        "mqtt": {"broker": f"tcp://127.0.0.1:{broker_port}", "client_id": f"fieldlink-gateway-test-{broker_port}"},
        "database": {"path": str(db)},
        "log": {"level": "info", "stats_interval_s": stats_interval_s},
    }
    for name, keys in (sections or {}).items():
        tables.setdefault(name, {}).update(keys)
    lines = []
    for name, keys in tables.items():
        lines.append(f"[{name}]")
        lines += [f"{k} = {toml_value(v)}" for k, v in keys.items()]
        lines.append("")
    for upstream in upstreams:
        lines.append("[[upstream]]")
        lines += [f"{k} = {toml_value(v)}" for k, v in upstream.items()]
        lines.append("")
    return "\n".join(lines)


class ForwardGateway(h.Process):
    """fieldlink-gateway --config FILE; every start of one work folder appends to gateway.log."""

    def __init__(self, workdir, broker_port, db, upstreams, **kwargs):
        self.config_path = Path(workdir) / "gateway.toml"
        self.config_path.write_text(gateway_toml(broker_port, db, upstreams, **kwargs))
        super().__init__("gateway", [h.GATEWAY, "--config", self.config_path], workdir)


def mqtt_upstream(name, port, **keys):
    return {"name": name, "kind": "mqtt", "uri": f"tcp://127.0.0.1:{port}", **keys}


def postgres_upstream(name, server, port=None, **keys):
    """`port`: connect there instead of the server's own port (a proxy in between)."""
    conninfo = server.conninfo if port is None else server.conninfo.replace(f"port={server.port}", f"port={port}")
    return {"name": name, "kind": "postgres", "conninfo": conninfo, **keys}


def upstream_lines(gateway, name):
    """The gateway's stats lines about upstream `name` ("upstream NAME: connected lag=...")."""
    prefix = f"upstream {name}: "
    return [line for line in gateway.log().splitlines()
            if prefix + "connected " in line or prefix + "disconnected " in line]


# --- a link with latency ---------------------------------------------------------------------

class DelayProxy:
    """A TCP proxy on 127.0.0.1 that holds every byte for `delay` seconds in each direction, so
    that the tests can act while a chunk is in flight: `pending_to_client()` > 0 means an answer
    (a PUBACK, a COMMIT's reply) is on its way back to the gateway, which has not seen it yet.
    When either side closes, both are closed and whatever is still held is dropped (a cut link)."""

    def __init__(self, upstream_port, delay=0.1):
        self.upstream = ("127.0.0.1", upstream_port)
        self.delay = delay
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.connections_seen = 0
        self._lock = threading.Lock()
        self._pending = {"to_server": 0, "to_client": 0}
        self._pairs = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept_loop, name="delayproxy", daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        self._thread.join(timeout=5)
        with self._lock:
            pairs = list(self._pairs)
        for pair in pairs:
            self._close_pair(pair)

    def pending_to_client(self):
        with self._lock:
            return self._pending["to_client"]

    def _accept_loop(self):
        while not self._stop.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream, timeout=2)
            except OSError:
                client.close()
                continue
            self.connections_seen += 1
            for sock in (client, server):
                sock.settimeout(None)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            pair = {"client": client, "server": server, "closed": False, "cv": threading.Condition(self._lock),
                    "queues": {"to_server": [], "to_client": []}}
            with self._lock:
                self._pairs.append(pair)
            for src, dst, direction in ((client, server, "to_server"), (server, client, "to_client")):
                threading.Thread(target=self._read, args=(pair, src, direction), daemon=True).start()
                threading.Thread(target=self._write, args=(pair, dst, direction), daemon=True).start()

    def _read(self, pair, src, direction):
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            with self._lock:
                if pair["closed"]:
                    return
                if not data:
                    break
                pair["queues"][direction].append((time.monotonic() + self.delay, data))
                self._pending[direction] += len(data)
                pair["cv"].notify_all()
        self._close_pair(pair)

    def _write(self, pair, dst, direction):
        queue = pair["queues"][direction]
        while True:
            with self._lock:
                while not pair["closed"] and (not queue or queue[0][0] > time.monotonic()):
                    pair["cv"].wait(timeout=(queue[0][0] - time.monotonic()) if queue else None)
                if pair["closed"]:
                    return
                _, data = queue.pop(0)
            try:
                dst.sendall(data)
            except OSError:
                self._close_pair(pair)
                return
            finally:
                with self._lock:
                    self._pending[direction] -= len(data)

    def _close_pair(self, pair):
        with self._lock:
            if pair["closed"]:
                return
            pair["closed"] = True
            for direction, queue in pair["queues"].items():
                self._pending[direction] -= sum(len(d) for _, d in queue)
                queue.clear()
            pair["cv"].notify_all()
            if pair in self._pairs:
                self._pairs.remove(pair)
        for sock in (pair["client"], pair["server"]):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


def kill(process):
    """SIGKILL, then close its log files (harness.Process.kill leaves them open)."""
    process.kill()
    process.stop()


# --- the gateway's SQLite (read-only) ------------------------------------------------------

def _ro(db):
    return contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10))


def cursor(db, upstream):
    """The row of forward_cursors for `upstream` as a dict, or None (also when the table or
    the file does not exist yet)."""
    try:
        with _ro(db) as conn:
            conn.row_factory = sqlite3.Row
            row = conn.execute("SELECT * FROM forward_cursors WHERE upstream = ?", (upstream,)).fetchone()
    except sqlite3.OperationalError:
        return None
    return dict(row) if row else None


def last_row_id(db):
    try:
        with _ro(db) as conn:
            return conn.execute("SELECT COALESCE(MAX(id), 0) FROM readings").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def stored_count(db):
    try:
        with _ro(db) as conn:
            return conn.execute("SELECT COUNT(*) FROM readings").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def forwarded_through(db, upstream):
    """True when the cursor of `upstream` has passed the newest stored reading with one lane."""
    c = cursor(db, upstream)
    if c is None:
        return False
    return c["live_from_id"] is None and c["next_id"] > last_row_id(db)


def wait_forwarded(db, upstreams, gateway, timeout=120):
    """Waits until every upstream's durable cursor reached the last stored reading id."""
    last = last_row_id(db)

    def done():
        if not gateway.running():
            raise AssertionError(f"the gateway exited with {gateway.proc.returncode}:\n{gateway.log()[-4000:]}")
        return all(forwarded_through(db, u) for u in upstreams)

    try:
        h.wait_for(done, timeout, f"the forward cursors of {upstreams} to pass reading id {last}", interval=0.1)
    except AssertionError as e:
        status = {u: cursor(db, u) for u in upstreams}
        raise AssertionError(f"{e}; cursors {status}, last id {last_row_id(db)}; gateway log:\n"
                             f"{gateway.log()[-4000:]}") from None


class Local:
    """The gateway's stored readings in the shape the upstreams are compared in."""

    def __init__(self, readings, received_ms, ids, row_count):
        self.readings = readings        # key -> (boot, channel, mono_ms, unix_ms, value)
        self.received_ms = received_ms  # key -> received_unix_ms
        self.ids = ids                  # key -> readings.id
        self.row_count = row_count

    def key_of_id(self):
        return {i: k for k, i in self.ids.items()}


def read_local(db, gateway_id=GATEWAY_ID):
    """harness.read_stored (boot, channel, mono_ms, value) plus unix_ms, received_unix_ms and
    the row id, keyed (gateway, device, incarnation, seq) like the upstreams."""
    stored, row_count = h.read_stored(db)
    with _ro(db) as conn:
        extra = conn.execute("SELECT device, incarnation, seq, id, unix_ms, received_unix_ms FROM readings").fetchall()
    readings, received, ids = {}, {}, {}
    for device, inc, seq, row_id, unix_ms, received_ms in extra:
        k = (device, h.u64(inc), seq)
        boot, channel, mono, value = stored[k]
        key = (gateway_id, *k)
        readings[key] = (boot, channel, mono, unix_ms, value)
        received[key] = received_ms
        ids[key] = row_id
    return Local(readings, received, ids, row_count)


# --- the MQTT upstream ---------------------------------------------------------------------

class UpstreamBroker(h.Process):
    """A second private Mosquitto on its own port and folder, standing in for a central broker.

    Its configuration is its own (a central broker is not the gateway's local one): no limit
    on queued messages or packet size, and persistence saved after every change, so that the
    receiver's persistent session (subscription and queued messages) survives a SIGKILL of
    the broker as far as Mosquitto can keep it. `shipped_config=True` instead uses
    config/mosquitto/fieldlink.conf like harness.Mosquitto (max_packet_size 131072)."""

    def __init__(self, workdir, port=None, shipped_config=False):
        self.dir = Path(workdir) / "upstream-broker"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or h.free_port()
        persistence = self.dir / "data"
        persistence.mkdir(exist_ok=True)
        conf = self.dir / "mosquitto.conf"
        if shipped_config:
            text = h.SHIPPED_MOSQUITTO_CONF.read_text()
            text, n = re.subn(r"(?m)^listener .*$", f"listener {self.port} 127.0.0.1", text)
            assert n == 1, "shipped mosquitto config changed shape"
            text += f"\npersistence_location {persistence}/\n"
        else:
            text = "\n".join([
                f"listener {self.port} 127.0.0.1",
                "allow_anonymous true",
                "max_queued_messages 0",
                "max_queued_bytes 0",
                "max_inflight_messages 100",
                "persistence true",
                f"persistence_location {persistence}/",
                "autosave_on_changes true",
                "autosave_interval 1",
                "set_tcp_nodelay true",
                "log_dest stderr",
                "log_type error",
                "log_type warning",
                "log_type notice",
                "log_type information",
                "",
            ])
        text += f"user {getpass.getuser()}\n"
        conf.write_text(text)
        super().__init__("upstream-broker", ["mosquitto", "-c", conf], self.dir)

    def start(self):
        super().start()
        h.wait_for(lambda: h.port_open(self.port) or not self.running(), 10, "the upstream mosquitto to listen")
        if not self.running():
            raise AssertionError(f"upstream mosquitto exited:\n{self.log()}")
        return self


class Receiver(h.Process):
    """The upstream's consumer: `python3 forward_harness.py receive ...` subscribed with QoS 1
    and a persistent session (fixed client id, clean session off) to the forward topics. It
    appends one line per PUBLISH to `received.txt`:

        <arrival index> <unix time> <connection number> <dup flag> <topic> <payload hex>

    and PUBACKs only after the line is written, so what the broker counts as delivered is in
    the file. It reconnects (and subscribes again) whenever its connection ends."""

    def __init__(self, workdir, port, client_id="fieldlink-test-receiver", topic=FORWARD_TOPIC_FILTER):
        self.path = Path(workdir) / "received.txt"
        self.ready_path = Path(workdir) / "receiver.subscribed"
        self.port = port
        super().__init__("receiver", [sys.executable, Path(__file__).resolve(), "receive", "--port", port,
                                      "--client-id", client_id, "--topic", topic, "--out", self.path,
                                      "--ready", self.ready_path], workdir)

    def subscriptions(self):
        try:
            return int(self.ready_path.read_text() or 0)
        except (FileNotFoundError, ValueError):
            return 0

    def start(self, timeout=20):
        before = self.subscriptions()
        super().start()
        self.wait_subscribed(before + 1, timeout)
        return self

    def wait_subscribed(self, count, timeout=20):
        """Waits for the receiver's `count`th SUBACK since the file was made."""
        h.wait_for(lambda: self.subscriptions() >= count or not self.running(), timeout,
                   f"the receiver's subscription number {count}")
        if not self.running():
            raise AssertionError(f"the receiver exited:\n{self.log()}")

    def read(self):
        return read_forwarded(self.path)


# --- decoding forwarded batches (docs/protocol.md section 10) --------------------------------

class DecodeError(Exception):
    pass


def zstd_decompress(frame):
    """One zstd frame through the `zstd` command-line tool (Python's standard library has no zstd)."""
    tool = shutil.which("zstd")
    if tool is None:
        raise DecodeError("a zstd frame arrived, and the zstd command-line tool (Debian package zstd) is missing")
    result = subprocess.run([tool, "-d", "-q", "-c"], input=frame, capture_output=True, timeout=60)
    if result.returncode != 0:
        raise DecodeError(f"zstd -d failed: {result.stderr.decode(errors='replace').strip()}")
    return result.stdout


def decode_payload(payload, allow_zstd=True):
    """A forwarded batch -> (gateway, device, [(incarnation, seq, boot, channel, mono_ms,
    unix_ms or None, value, received_unix_ms)], form) where form is 'binary', 'json',
    'zstd+binary' or 'zstd+json'. Raises DecodeError for anything section 10 does not allow."""
    if payload[:4] == ZSTD_MAGIC:
        if not allow_zstd:
            raise DecodeError("a zstd frame inside a zstd frame")
        if len(payload) < 5:
            raise DecodeError("a zstd frame without its header")
        descriptor = payload[4]
        if descriptor >> 6 == 0 and not descriptor & 0x20:  # neither Frame_Content_Size nor Single_Segment
            raise DecodeError("the zstd frame does not record its content size")
        gateway, device, records, form = decode_payload(zstd_decompress(payload), allow_zstd=False)
        return gateway, device, records, "zstd+" + form
    stripped = payload.lstrip(b" \t\r\n")
    if stripped[:1] == b"{":
        return (*_decode_json(stripped), "json")
    return (*_decode_binary(payload), "binary")


def _id(text, what, longest):
    if not 1 <= len(text) <= longest:
        raise DecodeError(f"{what} length {len(text)} outside 1..{longest}")
    return text


def _decode_binary(p):
    if len(p) < 4 + 1 + 1 + 1 + 1 + 2 + 4:
        raise DecodeError(f"binary batch of {len(p)} bytes is too short")
    if p[:4] != BINARY_HEADER:
        raise DecodeError(f"header {p[:4].hex()} is not 464c0105")
    crc = struct.unpack_from("<I", p, len(p) - 4)[0]
    if zlib.crc32(p[:-4]) & 0xFFFFFFFF != crc:
        raise DecodeError("CRC-32 mismatch")
    at = 4
    g = p[at]
    at += 1
    gateway = _id(p[at:at + g].decode("ascii"), "gateway id", 64)
    at += g
    d = p[at]
    at += 1
    device = _id(p[at:at + d].decode("ascii"), "device id", 32)
    at += d
    (count,) = struct.unpack_from("<H", p, at)
    at += 2
    if not 1 <= count <= 4096:
        raise DecodeError(f"count {count} outside 1..4096")
    if len(p) != at + RECORD.size * count + 4:
        raise DecodeError(f"{len(p)} bytes for {count} records: expected {at + RECORD.size * count + 4}")
    records = []
    for i in range(count):
        inc, seq, boot, channel, flags, mono, unix_ms, value, received = RECORD.unpack_from(p, at + RECORD.size * i)
        if flags & ~1:
            raise DecodeError(f"record {i}: flags {flags:#x} has bits other than bit 0")
        if not flags & 1:
            if unix_ms != 0:
                raise DecodeError(f"record {i}: unix_ms {unix_ms} although flag bit 0 is clear")
            unix_ms = None
        records.append((inc, seq, boot, channel, mono, unix_ms, value, received))
    return gateway, device, records


def _decode_json(text):
    try:
        doc = json.loads(text)
    except (ValueError, UnicodeDecodeError) as e:
        raise DecodeError(f"JSON: {e}") from None
    if doc.get("v") != 1:
        raise DecodeError(f"JSON version {doc.get('v')!r}")
    gateway = _id(doc["gateway"], "gateway id", 64)
    device = _id(doc["device"], "device id", 32)
    readings = doc["readings"]
    if not 1 <= len(readings) <= 4096:
        raise DecodeError(f"{len(readings)} readings outside 1..4096")
    records = []
    for r in readings:
        inc = int(r["incarnation"], 16)
        records.append((inc, r["seq"], r["boot"], r["ch"], r["t"], r["unix_ms"], float(r["v"]),
                        r["received_unix_ms"]))
    return gateway, device, records


def document_vector(name):
    """The bytes of a `<!-- vector: NAME -->` block in docs/protocol.md."""
    text = (h.ROOT / "docs" / "protocol.md").read_text()
    marker = f"<!-- vector: {name} -->"
    at = text.index(marker)
    start = text.index("```", at)
    start = text.index("\n", start) + 1
    end = text.index("```", start)
    return bytes.fromhex(text[start:end].replace("\n", " "))


class Forwarded:
    """What an MQTT receiver got."""

    def __init__(self):
        self.readings = {}      # key -> (boot, channel, mono_ms, unix_ms, value), the first copy
        self.received_ms = {}   # key -> received_unix_ms of the first copy
        self.first_arrival = {}  # key -> arrival index of the message that brought it first
        self.last_arrival = {}   # key -> arrival index of its last copy
        self.copies = {}        # key -> number of copies
        self.duplicates = 0     # readings received more than once (the extra copies)
        self.messages = []      # (arrival index, unix time, device, keys) per message
        self.forms = set()      # payload forms seen ('binary', 'json', 'zstd+binary', ...)
        self.differing_copies = []  # keys whose copies disagree other than by unix_ms filled in
        self.redelivered = 0    # PUBLISHes with the DUP flag (the broker resending to the receiver)
        self.problems = []      # payloads that do not decode or whose topic does not fit

    def duplicated_keys(self):
        return {k for k, n in self.copies.items() if n > 1}


def read_forwarded(path):
    """Decodes every payload a Receiver wrote to `path`."""
    out = Forwarded()
    if not Path(path).exists():
        return out
    lines = Path(path).read_text().split("\n")
    for line in lines[:-1]:  # the last one is empty or still being written
        parts = line.split(" ")
        if len(parts) != 6:
            out.problems.append(f"a line of {len(parts)} fields in {path}")
            continue
        index, when, _conn, dup, topic, payload_hex = parts
        try:
            gateway, device, records, form = decode_payload(bytes.fromhex(payload_hex))
        except (DecodeError, KeyError, TypeError, ValueError) as e:
            out.problems.append(f"message {index} on {topic}: {e}")
            continue
        out.forms.add(form)
        if topic != f"fieldlink/v1/{gateway}/{device}/forward":
            out.problems.append(f"message {index}: topic {topic} for gateway {gateway} device {device}")
        out.redelivered += dup == "1"
        index = int(index)
        keys = []
        for inc, seq, boot, channel, mono, unix_ms, value, received in records:
            key = (gateway, device, inc, seq)
            if key in keys:
                out.problems.append(f"message {index} carries {key} twice")
            keys.append(key)
            value_tuple = (boot, channel, mono, unix_ms, value)
            if key in out.readings:
                out.duplicates += 1
                out.copies[key] += 1
                first = out.readings[key]
                if not _same_reading(first, value_tuple) and not _same_reading(value_tuple, first):
                    out.differing_copies.append((key, first, value_tuple))
                elif first[3] is None and unix_ms is not None:
                    out.readings[key] = value_tuple  # a later copy after the gateway filled wall time
                if out.received_ms[key] != received:
                    out.differing_copies.append((key, ("received_unix_ms", out.received_ms[key]), received))
            else:
                out.readings[key] = value_tuple
                out.received_ms[key] = received
                out.first_arrival[key] = index
                out.copies[key] = 1
            out.last_arrival[key] = index
        out.messages.append((index, float(when), device, keys))
    return out


def _same_reading(upstream, local):
    """Equal fields, value bit for bit; an upstream unix_ms of None also matches a local one
    (the gateway filled the wall time after it forwarded the row, protocol section 10)."""
    ub, uc, um, uu, uv = upstream
    lb, lc, lm, lu, lv = local
    return ((ub, uc, um) == (lb, lc, lm) and struct.pack("<d", uv) == struct.pack("<d", lv)
            and (uu == lu or uu is None))


def wait_received(receiver, expected_keys, timeout=60):
    """Waits until the receiver holds every key in `expected_keys` (or the time is up: the
    comparison that follows then names what is missing). Returns the Forwarded."""
    deadline = time.monotonic() + timeout
    while True:
        got = receiver.read()
        if expected_keys <= got.readings.keys() or time.monotonic() > deadline:
            return got
        time.sleep(0.25)


# --- the PostgreSQL upstream ---------------------------------------------------------------

def read_postgres(server, table="fieldlink_readings"):
    """(readings, received_ms, row_count, distinct_keys) from the central table; value bit for bit."""
    rows = server.rows(
        f"SELECT gateway, device, incarnation, seq, boot, channel, mono_ms, unix_ms,"
        f" encode(float8send(value), 'hex'), received_unix_ms FROM {table}")
    readings, received = {}, {}
    for gateway, device, inc, seq, boot, channel, mono, unix_ms, value_hex, received_ms in rows:
        key = (gateway, device, h.u64(int(inc)), int(seq))
        value = struct.unpack(">d", bytes.fromhex(value_hex))[0]
        readings[key] = (int(boot), int(channel), h.u64(int(mono)), int(unix_ms) if unix_ms != "" else None, value)
        received[key] = int(received_ms)
    (counts,) = server.rows(
        f"SELECT count(*), count(DISTINCT (gateway, device, incarnation, seq)) FROM {table}")
    return readings, received, int(counts[0]), int(counts[1])


def wait_postgres_rows(server, count, timeout=60, table="fieldlink_readings"):
    h.wait_for(lambda: int(server.query(f"SELECT count(*) FROM {table}") or 0) >= count, timeout,
               f"{count} rows in PostgreSQL", interval=0.25)


# --- the comparison ------------------------------------------------------------------------

def assert_forwarded(test, local, readings, received_ms, what):
    """The upstream's set equals the gateway's SQLite set: every key there (zero lost), nothing
    else, every field equal (value bit for bit, received_unix_ms too). unix_ms may be missing
    upstream where the gateway filled it in after forwarding (section 10); returns how many."""
    lost = local.readings.keys() - readings.keys()
    extra = readings.keys() - local.readings.keys()
    ids = local.ids
    test.assertFalse(lost, f"{what}: {len(lost)} of {len(local.readings)} stored readings never arrived, e.g. "
                           f"{sorted(lost, key=ids.get)[:5]} (row ids {sorted(ids[k] for k in lost)[:20]})")
    test.assertFalse(extra, f"{what}: {len(extra)} readings arrived that the gateway never stored, "
                            f"e.g. {sorted(extra)[:5]}")
    differing = [(k, readings[k], v) for k, v in local.readings.items() if not _same_reading(readings[k], v)]
    test.assertFalse(differing, f"{what}: {len(differing)} readings arrived with other fields "
                                f"(key, upstream, local), e.g. {differing[:3]}")
    other_received = [k for k, v in local.received_ms.items() if received_ms[k] != v]
    test.assertFalse(other_received, f"{what}: received_unix_ms differs for {other_received[:5]}")
    return sum(1 for k, v in local.readings.items() if readings[k][3] is None and v[3] is not None)


def assert_mqtt_forwarded(test, local, got, what="MQTT upstream"):
    """assert_forwarded for an MQTT receiver, plus: every payload decoded, no reading twice
    within one message, copies of one reading identical. Returns the duplicate count."""
    test.assertFalse(got.problems, f"{what}: {len(got.problems)} bad payloads, e.g. {got.problems[:3]}")
    test.assertFalse(got.differing_copies, f"{what}: copies of one reading differ: {got.differing_copies[:3]}")
    late_wall = assert_forwarded(test, local, got.readings, got.received_ms, what)
    log(f"{what}: {len(got.readings)} of {len(local.readings)} stored readings arrived in {len(got.messages)} "
        f"messages ({', '.join(sorted(got.forms))}); {got.duplicates} duplicate readings; "
        f"{got.redelivered} redelivered by the broker; {late_wall} forwarded before their wall time was known")
    return got.duplicates


def assert_duplicates_in_flight(test, local, got, spans, what="MQTT upstream"):
    """Duplicates only for what was in flight: every reading that arrived more than once has a
    row id inside one of `spans` ([first_id, end_id) ranges: from a cursor position saved at a
    break, as far as the window of chunks in flight could reach)."""
    dup_ids = sorted(local.ids[k] for k in got.duplicated_keys())
    outside = [i for i in dup_ids if not any(a <= i < b for a, b in spans)]
    test.assertFalse(outside, f"{what}: {len(outside)} of {len(dup_ids)} duplicated readings were not in flight "
                              f"at any break (ids {outside[:20]}; in-flight spans {spans})")
    # Whole messages: how many of the messages that brought a duplicate were duplicates entirely.
    duplicated = got.duplicated_keys()
    seen, whole, partial = set(), 0, 0
    for _, _, _, keys in got.messages:
        if any(k in seen for k in keys):
            if all(k in seen for k in keys):
                whole += 1
            else:
                partial += 1
        seen.update(keys)
    log(f"{what}: {len(duplicated)} readings arrived more than once ({got.duplicates} extra copies); "
        f"{whole} messages were wholly repeats, {partial} repeated a part and carried new readings "
        f"(a resent chunk starts at the cursor and may reach beyond the lost one)")


def in_flight_spans(local, cur, window, batch_rows):
    """[first, end) id ranges that the chunks in flight at a break could cover: from each lane's
    position in the cursor `cur` (saved at the break) as far as `window` chunks of `batch_rows`
    stored rows reach."""
    ids = sorted(local.ids.values())
    reach = window * batch_rows
    starts = [cur["next_id"]]
    if cur.get("live_from_id") is not None:
        starts.append(cur["live_next_id"])
    spans = []
    for start in starts:
        at = bisect.bisect_left(ids, start)
        end = ids[at + reach - 1] + 1 if at + reach - 1 < len(ids) else (ids[-1] + 1 if ids else start)
        spans.append((start, max(start, end)))
    return spans


def assert_postgres_forwarded(test, local, server, what="PostgreSQL upstream"):
    readings, received, rows, distinct = read_postgres(server)
    test.assertEqual(rows, distinct, f"{what}: {rows - distinct} duplicate rows")
    test.assertEqual(rows, len(readings))
    late_wall = assert_forwarded(test, local, readings, received, what)
    log(f"{what}: {len(readings)} of {len(local.readings)} stored readings, {rows} rows, {distinct} distinct keys, "
        f"0 duplicates; {late_wall} forwarded before their wall time was known")
    return rows


def drain_readers(test, readers, timeout=180):
    for r in readers:
        code = r.wait(timeout=timeout)
        test.assertEqual(code, 0, f"{r.name} did not drain (exit {code}):\n{r.log()[-3000:]}")


def settle_chain(test, readers, gateway, db, upstreams, timeout=180):
    """The end of every scenario: the readers drain (exit 0: each reading acked by the gateway),
    SQLite holds exactly what they recorded, and every upstream's durable cursor reaches the
    last stored row. Returns read_local(db)."""
    drain_readers(test, readers, timeout=timeout)
    h.assert_exactly_once(test, readers, db)
    wait_forwarded(db, upstreams, gateway, timeout=timeout)
    for name in upstreams:
        lines = upstream_lines(gateway, name)
        if lines:
            log(f"last stats line: {lines[-1].strip()}")
    return read_local(db)


def stop_all(*processes):
    """Stops what was started, in the order given; ignores what never started."""
    for p in processes:
        if p is None:
            continue
        with contextlib.suppress(Exception):
            if isinstance(p, (list, tuple)):
                stop_all(*p)
            else:
                p.stop()


def pg_skip_reason():
    import pg_harness
    missing = pg_harness.missing_binary()
    return f"PostgreSQL binaries missing: {missing}" if missing else None


# --- the receiver process ------------------------------------------------------------------

def _encode_length(n):
    out = bytearray()
    while True:
        byte = n % 128
        n //= 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _mqtt_string(s):
    b = s.encode()
    return struct.pack(">H", len(b)) + b


class _Conn:
    def __init__(self, sock):
        self.sock = sock
        self.buf = bytearray()

    def packet(self):
        """One (type, flags, body) from the buffer, or None when incomplete."""
        if len(self.buf) < 2:
            return None
        length, multiplier, at = 0, 1, 1
        while True:
            if at >= len(self.buf):
                return None
            byte = self.buf[at]
            length += (byte & 0x7F) * multiplier
            multiplier *= 128
            at += 1
            if not byte & 0x80:
                break
            if at > 4:
                raise OSError("bad remaining length")
        if len(self.buf) < at + length:
            return None
        first = self.buf[0]
        body = bytes(self.buf[at:at + length])
        del self.buf[:at + length]
        return first >> 4, first & 0x0F, body


def receive_main(argv):
    import argparse
    parser = argparse.ArgumentParser(prog="forward_harness.py receive")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--ready", required=True)
    parser.add_argument("--keepalive", type=int, default=10)
    args = parser.parse_args(argv)

    out = open(args.out, "a", buffering=1 << 20)
    index = sum(1 for _ in open(args.out)) if os.path.getsize(args.out) else 0
    try:
        subscriptions = int(Path(args.ready).read_text() or 0)  # counted over restarts
    except (FileNotFoundError, ValueError):
        subscriptions = 0
    connection = 0
    while True:
        try:
            sock = socket.create_connection(("127.0.0.1", args.port), timeout=2)
        except OSError:
            time.sleep(0.1)
            continue
        connection += 1
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.settimeout(1.0)
            conn = _Conn(sock)
            # CONNECT: MQTT 3.1.1, clean session off (flags 0), keep-alive, client id.
            body = _mqtt_string("MQTT") + bytes([4, 0x00]) + struct.pack(">H", args.keepalive) + \
                _mqtt_string(args.client_id)
            sock.sendall(bytes([0x10]) + _encode_length(len(body)) + body)
            # SUBSCRIBE packet id 1, QoS 1.
            body = struct.pack(">H", 1) + _mqtt_string(args.topic) + bytes([1])
            sock.sendall(bytes([0x82]) + _encode_length(len(body)) + body)
            last_sent = time.monotonic()
            last_heard = time.monotonic()
            while True:
                try:
                    data = sock.recv(1 << 20)
                    if not data:
                        raise OSError("closed by the broker")
                    conn.buf += data
                    last_heard = time.monotonic()
                except socket.timeout:
                    pass
                now = time.monotonic()
                if now - last_heard > 2 * args.keepalive:
                    raise OSError("the broker went silent")
                if now - last_sent > args.keepalive / 2:
                    sock.sendall(b"\xc0\x00")  # PINGREQ
                    last_sent = now
                acks = bytearray()
                while (packet := conn.packet()) is not None:
                    kind, flags, body = packet
                    if kind == 2:  # CONNACK
                        if body[1] != 0:
                            raise OSError(f"CONNACK return code {body[1]}")
                    elif kind == 9:  # SUBACK
                        if body[2] == 0x80:
                            raise OSError("subscription refused")
                        subscriptions += 1
                        Path(args.ready).write_text(str(subscriptions))
                    elif kind == 3:  # PUBLISH
                        qos = (flags >> 1) & 3
                        (topic_len,) = struct.unpack_from(">H", body, 0)
                        topic = body[2:2 + topic_len].decode()
                        at = 2 + topic_len
                        packet_id = None
                        if qos:
                            (packet_id,) = struct.unpack_from(">H", body, at)
                            at += 2
                        payload = body[at:]
                        out.write(f"{index} {time.time():.6f} {connection} {(flags >> 3) & 1} {topic} "
                                  f"{payload.hex()}\n")
                        index += 1
                        if packet_id is not None:
                            acks += b"\x40\x02" + struct.pack(">H", packet_id)
                if acks:
                    out.flush()  # written before the broker hears PUBACK
                    sock.sendall(acks)
                    last_sent = time.monotonic()
        except OSError as e:
            out.flush()
            print(f"receiver: connection {connection} ended: {e}", file=sys.stderr, flush=True)
            with contextlib.suppress(OSError):
                sock.close()
            time.sleep(0.1)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "receive":
        receive_main(sys.argv[2:])
    else:
        sys.exit("usage: forward_harness.py receive --port P --client-id ID --topic T --out FILE --ready FILE")
