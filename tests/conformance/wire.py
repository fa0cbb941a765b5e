"""The fieldlink wire protocol v1 (docs/protocol.md), written again from the document.

The conformance checker must not trust the project's own codec (protocol/), so this is a
second, independent implementation: decode batch / status / telemetry / ack, encode the same,
CRC-32 from the polynomial in §2, and the JSON batch of §6. Errors carry the names the
document uses (truncated, bad_checksum, ...). Standard library only.
"""

import json
import math
import struct
from dataclasses import dataclass

MAGIC = b"FL"
VERSION = 1
KIND_BATCH, KIND_ACK, KIND_STATUS, KIND_TELEMETRY = 1, 2, 3, 4

RECORD_SIZE = 17
BATCH_HEADER_SIZE = 44
MAX_RECORDS = 512
MAX_BATCH_SIZE = BATCH_HEADER_SIZE + RECORD_SIZE * MAX_RECORDS + 4  # 8752
ACK_SIZE = 32
STATUS_FIXED_SIZE = 22
MAX_FIRMWARE_VERSION = 32
TELEMETRY_SIZE = 72
U64_MAX = (1 << 64) - 1


class WireError(ValueError):
    """A message that breaks docs/protocol.md; `code` is the document's error name."""

    def __init__(self, code, detail=""):
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code


# --- CRC-32 (§2): reflected polynomial 0xEDB88320, init and final xor 0xFFFFFFFF ---------

def _crc_table():
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xEDB88320 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC_TABLE = _crc_table()


def crc32(data):
    crc = 0xFFFFFFFF
    for byte in data:
        crc = (crc >> 8) ^ _CRC_TABLE[(crc ^ byte) & 0xFF]
    return crc ^ 0xFFFFFFFF


def _seal(body):
    """Appends the CRC of every byte before it, little-endian."""
    return body + struct.pack("<I", crc32(body))


def _check_frame(data, kind):
    """Header and CRC checks shared by every kind, in the document's order (after the size checks)."""
    if data[0:2] != MAGIC:
        raise WireError("bad_magic")
    if data[2] != VERSION:
        raise WireError("unsupported_version", f"version {data[2]}")
    if data[3] != kind:
        raise WireError("wrong_kind", f"kind {data[3]}, expected {kind}")


def _check_crc(data):
    stored = struct.unpack_from("<I", data, len(data) - 4)[0]
    computed = crc32(data[:-4])
    if stored != computed:
        raise WireError("bad_checksum", f"stored {stored:08x}, computed {computed:08x}")


# --- Batch (§3) ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Record:
    channel: int
    mono_ms: int
    value: float

    def identity(self):
        """What must be equal when a reading is sent twice (the value bit for bit)."""
        return (self.channel, self.mono_ms, struct.pack("<d", self.value))


@dataclass(frozen=True)
class Batch:
    incarnation: int
    first_seq: int
    floor_seq: int
    boot: int
    wall_offset_ms: int
    offset_known: bool
    records: tuple
    form: str = "binary"        # or "json"
    floor_explicit: bool = True  # a JSON batch without floor_seq gets 1 by default

    @property
    def last_seq(self):
        return self.first_seq + len(self.records) - 1

    def seqs(self):
        return range(self.first_seq, self.last_seq + 1)


def encode_batch(batch):
    flags = 1 if batch.offset_known else 0
    body = MAGIC + bytes([VERSION, KIND_BATCH]) + struct.pack(
        "<QQQIqBBH", batch.incarnation, batch.first_seq, batch.floor_seq, batch.boot,
        batch.wall_offset_ms if batch.offset_known else 0, flags, 0, len(batch.records))
    for r in batch.records:
        body += struct.pack("<BQd", r.channel, r.mono_ms, r.value)
    return _seal(body)


def decode_batch(data):
    """A binary batch, checked in the order of the §3 decoder error table."""
    data = bytes(data)
    if len(data) < BATCH_HEADER_SIZE + 4:
        raise WireError("truncated", f"{len(data)} bytes")
    if len(data) > MAX_BATCH_SIZE:
        raise WireError("oversize", f"{len(data)} bytes")
    if (len(data) - BATCH_HEADER_SIZE - 4) % RECORD_SIZE:
        raise WireError("truncated", f"{len(data)} bytes: not a whole number of records")
    _check_frame(data, KIND_BATCH)
    _check_crc(data)
    incarnation, first_seq, floor_seq, boot, offset, flags, reserved, count = struct.unpack_from(
        "<QQQIqBBH", data, 4)
    if flags & ~1 or reserved != 0 or first_seq == 0 or floor_seq > first_seq:
        raise WireError("bad_field", f"flags {flags:#x}, reserved {reserved}, first_seq {first_seq}, "
                                     f"floor_seq {floor_seq}")
    if count == 0:
        raise WireError("empty_batch")
    if count > MAX_RECORDS:
        raise WireError("too_many_records", f"count {count}")
    present = (len(data) - BATCH_HEADER_SIZE - 4) // RECORD_SIZE
    if count != present:
        raise WireError("count_mismatch", f"count {count}, {present} records present")
    if first_seq + count - 1 > U64_MAX:
        raise WireError("sequence_overflow")
    records = []
    for i in range(count):
        channel, mono_ms, value = struct.unpack_from("<BQd", data, BATCH_HEADER_SIZE + RECORD_SIZE * i)
        if math.isnan(value):
            raise WireError("bad_field", f"record {i} value is NaN")
        records.append(Record(channel, mono_ms, value))
    return Batch(incarnation, first_seq, floor_seq, boot, offset, bool(flags & 1), tuple(records))


# --- JSON batch (§6) ----------------------------------------------------------------------

_JSON_KEYS = {"v", "incarnation", "first_seq", "floor_seq", "boot", "wall_offset_ms", "readings"}
_JSON_REQUIRED = {"v", "incarnation", "first_seq", "readings"}
_HEX = set("0123456789abcdefABCDEF")


def is_json_payload(data):
    stripped = bytes(data).lstrip(b" \t\r\n")
    return stripped[:1] == b"{"


def _is_int(x):
    return isinstance(x, int) and not isinstance(x, bool)


def decode_json_batch(data):
    """A JSON batch; any breach of §6 is `bad_json`."""
    def bad(why):
        return WireError("bad_json", why)

    try:
        obj = json.loads(bytes(data).decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise bad(f"not JSON ({e})") from None
    if not isinstance(obj, dict):
        raise bad("not an object")
    unknown = set(obj) - _JSON_KEYS
    if unknown:
        raise bad(f"unknown keys {sorted(unknown)}")
    missing = _JSON_REQUIRED - set(obj)
    if missing:
        raise bad(f"missing keys {sorted(missing)}")
    if obj["v"] != 1 or not _is_int(obj["v"]):
        raise bad("v must be 1")
    inc = obj["incarnation"]
    if not isinstance(inc, str) or not 1 <= len(inc) <= 16 or not set(inc) <= _HEX:
        raise bad("incarnation must be 1 to 16 hex digits")
    first_seq = obj["first_seq"]
    if not _is_int(first_seq) or first_seq < 1:
        raise bad("first_seq must be an integer >= 1")
    floor_seq = obj.get("floor_seq", 1)
    if not _is_int(floor_seq) or floor_seq < 1 or floor_seq > first_seq:
        raise bad("floor_seq must be an integer <= first_seq")
    boot = obj.get("boot", 0)
    if not _is_int(boot) or not 0 <= boot <= 0xFFFFFFFF:
        raise bad("boot must be a u32 integer")
    offset = obj.get("wall_offset_ms")
    if offset is not None and not _is_int(offset):
        raise bad("wall_offset_ms must be an integer")
    readings = obj["readings"]
    if not isinstance(readings, list) or not 1 <= len(readings) <= MAX_RECORDS:
        raise bad("readings must be a list of 1 to 512 objects")
    records = []
    for i, r in enumerate(readings):
        if not isinstance(r, dict) or set(r) != {"ch", "t", "v"}:
            raise bad(f"reading {i} must have exactly ch, t, v")
        if not _is_int(r["ch"]) or not 0 <= r["ch"] <= 255:
            raise bad(f"reading {i}: ch must be 0..255")
        if not _is_int(r["t"]) or r["t"] < 0:
            raise bad(f"reading {i}: t must be an integer >= 0")
        if isinstance(r["v"], bool) or not isinstance(r["v"], (int, float)):
            raise bad(f"reading {i}: v must be a number")
        records.append(Record(r["ch"], r["t"], float(r["v"])))
    return Batch(int(inc, 16), first_seq, floor_seq, boot, offset or 0, offset is not None, tuple(records),
                 form="json", floor_explicit="floor_seq" in obj)


def decode_up(data):
    """Whatever a device may put on …/up: JSON when the first non-blank byte is `{`, else binary."""
    return decode_json_batch(data) if is_json_payload(data) else decode_batch(data)


# --- Commit ack (§4) ----------------------------------------------------------------------

@dataclass(frozen=True)
class Ack:
    incarnation: int
    watermark: int
    gateway_unix_ms: int


def encode_ack(incarnation, watermark, gateway_unix_ms):
    return _seal(MAGIC + bytes([VERSION, KIND_ACK]) + struct.pack("<QQq", incarnation, watermark, gateway_unix_ms))


def decode_ack(data):
    data = bytes(data)
    if len(data) < ACK_SIZE:
        raise WireError("truncated", f"{len(data)} bytes")
    if len(data) > ACK_SIZE:
        raise WireError("oversize", f"{len(data)} bytes")
    _check_frame(data, KIND_ACK)
    _check_crc(data)
    return Ack(*struct.unpack_from("<QQq", data, 4))


# --- Status (§5) --------------------------------------------------------------------------

ONLINE, OFFLINE = 1, 0


@dataclass(frozen=True)
class Status:
    state: int
    incarnation: int
    boot: int
    firmware_version: str

    @property
    def online(self):
        return self.state == ONLINE


def encode_status(status):
    version = status.firmware_version.encode("ascii")
    return _seal(MAGIC + bytes([VERSION, KIND_STATUS, status.state, len(version)]) +
                 struct.pack("<QI", status.incarnation, status.boot) + version)


def decode_status(data):
    data = bytes(data)
    if len(data) < STATUS_FIXED_SIZE + 1:
        raise WireError("truncated", f"{len(data)} bytes")
    if len(data) > STATUS_FIXED_SIZE + MAX_FIRMWARE_VERSION:
        raise WireError("oversize", f"{len(data)} bytes")
    _check_frame(data, KIND_STATUS)
    length = data[5]
    if length == 0 or length > MAX_FIRMWARE_VERSION:
        raise WireError("bad_field", f"version length {length}")
    if len(data) < STATUS_FIXED_SIZE + length:
        raise WireError("truncated", f"{len(data)} bytes for version length {length}")
    if len(data) > STATUS_FIXED_SIZE + length:
        raise WireError("bad_field", f"{len(data)} bytes for version length {length}")
    _check_crc(data)
    state = data[4]
    version = data[18:18 + length]
    if state not in (ONLINE, OFFLINE) or any(b < 0x20 or b > 0x7E for b in version):
        raise WireError("bad_field", f"state {state} or unprintable version {version!r}")
    incarnation, boot = struct.unpack_from("<QI", data, 6)
    return Status(state, incarnation, boot, version.decode("ascii"))


# --- Telemetry (§5a) ----------------------------------------------------------------------

@dataclass(frozen=True)
class Telemetry:
    incarnation: int
    boot: int
    reconnects: int
    uptime_ms: int
    held: int
    oldest_unacked_age_ms: int
    dropped: int
    next_seq: int
    acked_through: int


_TELEMETRY_FORMAT = "<QIIQQQQQQ"


def encode_telemetry(t):
    return _seal(MAGIC + bytes([VERSION, KIND_TELEMETRY]) + struct.pack(
        _TELEMETRY_FORMAT, t.incarnation, t.boot, t.reconnects, t.uptime_ms, t.held, t.oldest_unacked_age_ms,
        t.dropped, t.next_seq, t.acked_through))


def decode_telemetry(data):
    data = bytes(data)
    if len(data) < TELEMETRY_SIZE:
        raise WireError("truncated", f"{len(data)} bytes")
    if len(data) > TELEMETRY_SIZE:
        raise WireError("oversize", f"{len(data)} bytes")
    _check_frame(data, KIND_TELEMETRY)
    _check_crc(data)
    return Telemetry(*struct.unpack_from(_TELEMETRY_FORMAT, data, 4))


# --- Topics (§1) --------------------------------------------------------------------------

_ID_CHARS = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


def is_valid_device_id(device):
    return 1 <= len(device) <= 32 and set(device) <= _ID_CHARS


def topic(device, kind):
    """kind: up, ack, status or telemetry."""
    return f"fieldlink/v1/{device}/{kind}"
