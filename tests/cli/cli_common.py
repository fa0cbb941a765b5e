"""What the fieldlink command's tests share: running the program, and rows of the
gateway's database in the shape the command prints them."""

import contextlib
import datetime
import os
import sqlite3
import struct
import subprocess
import sys
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
import harness as h  # noqa: E402,F401  (re-exported for the tests)

FIELDLINK = os.environ.get("FIELDLINK", "fieldlink")
# Set by CMake in a sanitizer build: memory use there says nothing about the program.
SANITIZED = bool(os.environ.get("FIELDLINK_SANITIZE"))

COLUMNS = ["id", "device", "incarnation", "seq", "boot", "channel", "mono_ms", "unix_ms", "time", "value",
           "received_unix_ms"]


def fl(*args, timeout=120, **kwargs):
    return subprocess.run([FIELDLINK, *map(str, args)], capture_output=True, text=True, timeout=timeout, **kwargs)


def fl_raw(*args, timeout=120):
    """fl() with stdout and stderr as bytes: line ends and carriage returns as written."""
    return subprocess.run([FIELDLINK, *map(str, args)], capture_output=True, timeout=timeout)


def batch(incarnation, first_seq, records, boot=0, wall_offset_ms=None):
    """A binary batch (docs/protocol.md §3) of (channel, mono_ms, value) records."""
    flags = 0 if wall_offset_ms is None else 1
    body = struct.pack("<4sQQQIqBBH", b"FL\x01\x01", incarnation, first_seq, 1, boot, wall_offset_ms or 0, flags, 0,
                       len(records))
    body += b"".join(struct.pack("<BQd", *r) for r in records)
    return body + struct.pack("<I", zlib.crc32(body))


def json_value(v):
    """A reading's value from fieldlink's JSON (infinities come as strings)."""
    return float(v) if isinstance(v, str) else v


def iso(unix_ms):
    """ISO 8601 UTC with milliseconds, as fieldlink prints times."""
    t = datetime.datetime.fromtimestamp(unix_ms / 1000, tz=datetime.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{unix_ms % 1000:03d}Z"


def stored_rows(db, where="1", *args):
    """The readings as fieldlink shows them: dicts with every column, in id order."""
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)) as conn:
        rows = conn.execute(
            "SELECT id, device, incarnation, seq, boot, channel, mono_ms, unix_ms, value, received_unix_ms"
            f" FROM readings WHERE {where} ORDER BY id", args).fetchall()
    out = []
    for i, d, inc, seq, boot, ch, mono, unix, value, received in rows:
        out.append({"id": i, "device": d, "incarnation": f"{h.u64(inc):016x}", "seq": seq, "boot": boot,
                    "channel": ch, "mono_ms": mono, "unix_ms": unix, "time": None if unix is None else iso(unix),
                    "value": value, "received_unix_ms": received})
    return out


def from_csv(record):
    """A csv.DictReader row back in the shape of stored_rows."""
    r = dict(record)
    for k in ("id", "seq", "boot", "channel", "mono_ms", "received_unix_ms"):
        r[k] = int(r[k])
    r["unix_ms"] = int(r["unix_ms"]) if r["unix_ms"] else None
    r["time"] = r["time"] or None
    r["value"] = float(r["value"])
    return r
