"""A million-row export in bounded memory. The gateway makes the database file
(its own schema); the rows are then bulk-inserted with sqlite3, which is enough
for a test of the read side. Memory is the peak RSS of each fieldlink run
(see run_measured), compared with the same run on 20,000 rows: a
ratio of sizes, not a timing."""

import csv
import hashlib
import io
import json
import shutil
import sqlite3
import subprocess
import sys
import unittest
from pathlib import Path

from cli_common import FIELDLINK, SANITIZED, h

MILLION = 1_000_000
# Under the sanitizers memory is not compared (check_bounded), so a tenth of the rows checks the
# same streaming paths for memory errors in a tenth of the time (a million take 100 s there).
BIG = 100_000 if SANITIZED else MILLION
# Enough rows that zstd's window (2 MB at its default level) is in use; memory that grows
# with the rows shows as the difference to the million.
SMALL = 20_000
MIB = 1024  # ru_maxrss is in KiB
# What a million rows may cost above SMALL: SQLite's page cache (2 MB by default)
# filling up and the allocator's slack; far below what the rows are (>100 MB of CSV).
ALLOWED_GROWTH_KIB = 4 * MIB


def make_schema(wd):
    """An empty database made by the real gateway."""
    broker = h.Mosquitto(wd).start()
    db = wd / "schema.db"
    gateway = h.Gateway(wd, broker.port, db).start()
    try:
        h.wait_for(lambda: db.exists() and h.query(db, "PRAGMA user_version")[0][0] > 0, 30, "the gateway's schema")
    finally:
        gateway.stop()
        broker.stop()
    return db


def fill(db, n):
    # Three devices, four channels, about a third without wall time (as a real backlog has).
    base = 1_796_000_000_000
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.executemany(
            "INSERT INTO readings (device, incarnation, seq, boot, channel, mono_ms, unix_ms, value,"
            " received_unix_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            ((f"dev-{i % 3}", -(i % 3) - 2, i // 3 + 1, 0, i % 4, i * 10,
              None if i % 3 == 0 else base + i * 10, i * 0.001 - 17.25, base + i * 10 + 5) for i in range(n)))


def digest_rows(rows):
    """Count and a digest of (id, device, incarnation, seq, channel, mono_ms, unix_ms, value)."""
    m = hashlib.sha256()
    n = 0
    for i, d, inc, seq, ch, mono, unix, value in rows:
        m.update(f"{i}|{d}|{inc}|{seq}|{ch}|{mono}|{unix}|{float(value)!r}\n".encode())
        n += 1
    return n, m.hexdigest()


def database_digest(db):
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return digest_rows((i, d, f"{h.u64(inc):016x}", s, c, m, u, v) for i, d, inc, s, c, m, u, v in conn.execute(
            "SELECT id, device, incarnation, seq, channel, mono_ms, unix_ms, value FROM readings ORDER BY id"))


def csv_digest(stream):
    reader = csv.reader(io.TextIOWrapper(stream, newline=""))
    assert next(reader)[:4] == ["id", "device", "incarnation", "seq"]
    # id,device,incarnation,seq,boot,channel,mono_ms,unix_ms,time,value,received_unix_ms
    return digest_rows((int(r[0]), r[1], r[2], int(r[3]), int(r[5]), int(r[6]), int(r[7]) if r[7] else None, r[9])
                       for r in reader)


def ndjson_digest(stream):
    def rows():
        for line in stream:
            r = json.loads(line)
            yield r["id"], r["device"], r["incarnation"], r["seq"], r["channel"], r["mono_ms"], r["unix_ms"], r["value"]
    return digest_rows(rows())


# A child started with vfork (as subprocess does) inherits its parent's peak RSS at exec, so
# this test's own memory would hide fieldlink's. A small launcher fork()s instead and reports
# its child's own peak (its floor is the launcher's few MB, the same for every run).
LAUNCHER = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as f:
    f.write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run_measured(argv, consume=None):
    """Runs fieldlink; returns (its peak RSS in KiB, what consume() returned from its stdout)."""
    rss_file = Path(argv[1]).with_suffix(".rss")
    with subprocess.Popen([sys.executable, "-S", "-c", LAUNCHER, rss_file, FIELDLINK, *map(str, argv)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        result = consume(proc.stdout) if consume else proc.stdout.read()
        err = proc.stderr.read()
    assert proc.returncode == 0, f"{argv}: exit {proc.returncode}: {err.decode(errors='replace')}"
    rss = int(rss_file.read_text())
    print(f"\n  {' '.join(map(str, argv[2:]))} on {Path(argv[1]).name}: peak RSS {rss} KiB", file=sys.stderr)
    return rss, result


class ExportMillion(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls._wd = h.workdir("cli-million")
        cls.wd = cls._wd.__enter__()
        schema = make_schema(cls.wd)
        cls.small = cls.wd / "small.db"
        cls.big = cls.wd / "big.db"
        for db, n in ((cls.small, SMALL), (cls.big, BIG)):
            shutil.copyfile(schema, db)
            fill(db, n)
        cls.expected = {db: database_digest(db) for db in (cls.small, cls.big)}
        assert cls.expected[cls.big][0] == BIG

    @classmethod
    def tearDownClass(cls):
        cls._wd.__exit__(None, None, None)

    def check_bounded(self, small_kib, big_kib):
        if SANITIZED:
            self.skipTest("sanitizer build: its shadow memory and quarantine grow with work done")
        self.assertLess(big_kib, small_kib + ALLOWED_GROWTH_KIB,
                        f"peak RSS {big_kib} KiB on a million rows vs {small_kib} KiB on a thousand")

    def test_query_ndjson_streams(self):
        rss = {}
        for db in (self.small, self.big):
            rss[db], got = run_measured(["--db", db, "query", "--ndjson"], ndjson_digest)
            self.assertEqual(got, self.expected[db])
        self.check_bounded(rss[self.small], rss[self.big])

    def test_export_csv_and_zstd_stream(self):
        for name, decode in (("out.csv", None), ("out.ndjson.zst", "ndjson")):
            rss = {}
            for db in (self.small, self.big):
                out = self.wd / f"{db.stem}-{name}"
                rss[db], _ = run_measured(["--db", db, "export", "-o", out])
                if decode:
                    with subprocess.Popen(["zstd", "-dc", out], stdout=subprocess.PIPE) as unzip:
                        got = ndjson_digest(unzip.stdout)
                    self.assertEqual(unzip.returncode, 0)
                else:
                    with open(out, "rb") as f:
                        got = csv_digest(f)
                self.assertEqual(got, self.expected[db], name)
                out.unlink()
            with self.subTest(name):
                self.check_bounded(rss[self.small], rss[self.big])


if __name__ == "__main__":
    unittest.main()
