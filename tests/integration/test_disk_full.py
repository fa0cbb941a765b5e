"""Disk full: the gateway's database on a small real filesystem (a size-limited tmpfs, or a
loop-mounted ext4 image), filled to the last block while readers produce. Commits fail with
SQLITE_FULL and no acks go out (the readers keep their readings); retention's free-disk floor then
deletes the oldest rows (no upstream is configured, so every row counts as forwarded), using its
reserve file when SQLite cannot write at all; ingest resumes by itself. The exact check at the end:
every reading the readers produced, and every row the test seeded, is either in SQLite or was
deleted by retention, which names every deleted key in its debug log.

Needs root (mount). FIELDLINK_DISK_FULL_FS=tmpfs|ext4 forces one filesystem."""

import contextlib
import errno
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import time
import unittest

import harness as h

MIB = 1 << 20
FS_BYTES = 32 * MIB
FLOOR = 8 * MIB          # min_free_disk_bytes; the reserve is half of it (4 MiB)
SEED_ROWS = 80_000       # about 6 MiB of old rows: retention deletes these first, then the oldest readings
INTERVAL_S = 20          # long enough that the saver hits the full disk before the next pass
LOAD = ["--channels", "4", "--period", "10", "--batch-size", "64", "--window", "4",
        "--ack-timeout", "2000", "--drain-timeout", "180"]

DELETED_LINE = re.compile(r"retention: deleted readings (\d+)\.\.(\d+) \((\d+), [^)]*\):(.*)$")
DELETED_ENTRY = re.compile(r"([A-Za-z0-9_-]+)/([0-9a-f]{16}) seq ([0-9,-]+)")
PASS_SUMMARY = re.compile(r"retention: deleted (\d+) readings by age, (\d+) forwarded readings for size, "
                          r"(\d+) not yet forwarded")


def run(*argv):
    return subprocess.run([str(a) for a in argv], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@contextlib.contextmanager
def small_filesystem(workdir, size):
    """Mounts a filesystem of `size` bytes at workdir/disk; yields (path, description).
    Unmounts on the way out, whatever happened."""
    mountpoint = workdir / "disk"
    mountpoint.mkdir()
    wanted = os.environ.get("FIELDLINK_DISK_FULL_FS", "")
    reasons = []
    mounted = None
    if wanted in ("", "tmpfs"):
        result = run("mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", mountpoint)
        if result.returncode == 0:
            mounted = f"tmpfs of {size} bytes"
        else:
            reasons.append(f"tmpfs: {result.stdout.strip()}")
    if mounted is None and wanted in ("", "ext4") and shutil.which("mkfs.ext4"):
        image = workdir / "disk.img"
        with open(image, "wb") as f:
            f.truncate(size)
        made = run("mkfs.ext4", "-q", "-F", "-m", "0", image)
        result = made if made.returncode != 0 else run("mount", "-o", "loop", image, mountpoint)
        if result.returncode == 0:
            mounted = f"loop-mounted ext4 image of {size} bytes"
        else:
            reasons.append(f"ext4: {result.stdout.strip()}")
    if mounted is None:
        raise unittest.SkipTest("cannot mount a small filesystem here (needs root): " + "; ".join(reasons))
    try:
        yield mountpoint, mounted
    finally:
        if run("umount", mountpoint).returncode != 0:
            run("umount", "-l", mountpoint)


def free_bytes(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def fill(path):
    """Writes a file until the filesystem has no block left; returns its size."""
    written = 0
    with open(path, "wb", buffering=0) as f:
        for chunk in (MIB, 64 * 1024, 4096, 512):
            block = b"\xff" * chunk
            while True:
                try:
                    written += f.write(block)
                except OSError as e:
                    if e.errno != errno.ENOSPC:
                        raise
                    break
        with contextlib.suppress(OSError):
            os.fsync(f.fileno())
    return written


def seed(db, rows, received_unix_ms):
    """Old rows from a device that no reader plays: the oldest ids, the first retention deletes."""
    with contextlib.closing(sqlite3.connect(db, timeout=30, isolation_level=None)) as conn:
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(
            "INSERT INTO readings (device, incarnation, seq, boot, channel, mono_ms, unix_ms, value, received_unix_ms)"
            " VALUES ('seed', 1, ?, 0, 0, ?, NULL, ?, ?)",
            ((s, s, s + 0.5, received_unix_ms) for s in range(1, rows + 1)))
        conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return {("seed", 1, s): (0, 0, s, s + 0.5) for s in range(1, rows + 1)}


def count_rows(db):
    return h.query(db, "SELECT count(*) FROM readings")[0][0]


def max_id(db):
    return h.query(db, "SELECT COALESCE(max(id), 0) FROM readings")[0][0]


def deleted_keys(log_text, test):
    """Every (device, incarnation, seq) the gateway's retention logged as deleted."""
    keys = []
    rows = 0
    for line in log_text.splitlines():
        m = DELETED_LINE.search(line)
        if not m:
            continue
        in_line = 0
        for device, incarnation, runs in DELETED_ENTRY.findall(m.group(4)):
            for run_ in runs.split(","):
                first, last = (int(x) for x in run_.split("-"))
                keys.extend((device, int(incarnation, 16), seq) for seq in range(first, last + 1))
                in_line += last - first + 1
        test.assertEqual(in_line, int(m.group(3)), f"a deleted-readings line does not add up: {line}")
        rows += in_line
    test.assertEqual(len(keys), rows)
    test.assertEqual(len(set(keys)), len(keys), "retention deleted one key twice")
    return set(keys)


class DiskFull(unittest.TestCase):
    def test_full_disk_stalls_acks_then_retention_frees_space_and_ingest_resumes(self):
        with h.workdir("fault-disk-full") as wd, small_filesystem(wd, FS_BYTES) as (disk, kind):
            print(f"\ndisk full test on a {kind}", flush=True)
            broker = h.Mosquitto(wd).start()
            db = disk / "fieldlink.db"
            config = wd / "gateway.toml"
            config.write_text(f"""
[mqtt]
broker = "{broker.uri}"
client_id = "fieldlink-gateway-test-{broker.port}"
[database]
path = "{db}"
[retention]
min_free_disk_bytes = {FLOOR}
interval_s = {INTERVAL_S}
delete_batch_rows = 500
health_max_age_s = 0
dead_letters_max_age_s = 0
[log]
level = "debug"
stats_interval_s = 0
""")
            gateway = h.Process("gateway", [h.GATEWAY, "--config", config], wd).start()
            readers = []
            try:
                h.wait_for(lambda: "fieldlink-gateway running" in gateway.log() or not gateway.running(), 30,
                           "the gateway to start")
                self.assertTrue(gateway.running(), gateway.log()[-3000:])
                h.wait_for(lambda: "retention: every" in gateway.log(), 10,
                           "the gateway to start retention (Retention wired into main.cpp?)")
                h.wait_for(lambda: os.path.exists(f"{db}-reserve"), 30, "retention to make its reserve")

                seeded = seed(db, SEED_ROWS, int(time.time() * 1000))
                readers = [h.Reader(wd, f"df{i}", broker.port, LOAD).start() for i in range(3)]
                h.wait_for(lambda: count_rows(db) >= SEED_ROWS + 5000, 60, "readings from the readers")

                # Right after a pass, so the saver meets the full disk well before the next one.
                passes = gateway.log().count("retention: pass done")
                h.wait_for(lambda: gateway.log().count("retention: pass done") > passes, INTERVAL_S + 15,
                           "a retention pass")
                filler = fill(disk / "filler")
                print(f"filled the disk: {filler} bytes of filler, {free_bytes(disk)} bytes left", flush=True)
                self.assertEqual(free_bytes(disk), 0)

                h.wait_for(lambda: "database or disk is full" in gateway.log(), INTERVAL_S - 5,
                           "a commit to fail with SQLITE_FULL")
                self.assertIn("no acks sent", gateway.log())
                stalled = max_id(db)
                produced_then = sum(h.record_count(r) for r in readers)
                time.sleep(1)
                self.assertEqual(max_id(db), stalled, "nothing is committed while the disk is full")
                self.assertGreater(sum(h.record_count(r) for r in readers), produced_then,
                                   "the readers keep producing (and keep what was not acked)")

                # Retention frees space at its next pass; the saver's retries then succeed.
                h.wait_for(lambda: PASS_SUMMARY.search(gateway.log()), INTERVAL_S + 30,
                           "retention to delete rows")
                h.wait_for(lambda: max_id(db) > stalled, 60, "ingest to resume")
                resumed_at = max_id(db)
                h.wait_for(lambda: max_id(db) > resumed_at + 2000, 60, "ingest to keep going")

                for r in readers:
                    r.signal(signal.SIGTERM)  # stop sampling, drain, exit 0 once everything is acked
                for r in readers:
                    code = r.wait(timeout=200)
                    self.assertEqual(code, 0, f"{r.name} did not drain (exit {code}):\n{r.log()[-3000:]}")
            finally:
                for r in readers:
                    r.stop()
                gateway.stop()
                broker.stop()

            log = gateway.log()
            released = "deleted the reserve" in log
            print(f"retention {'released its reserve' if released else 'worked without its reserve'}", flush=True)

            # The exact set: produced + seeded == stored + deleted, disjoint, every field equal.
            produced = h.read_produced([r.record_file for r in readers])
            expected = dict(produced)
            expected.update(seeded)
            stored, row_count = h.read_stored(db)
            deleted = deleted_keys(log, self)
            self.assertEqual(row_count, len(stored), "duplicate rows")
            self.assertFalse(stored.keys() & deleted, "a deleted key came back")
            missing = expected.keys() - stored.keys() - deleted
            self.assertFalse(missing, f"{len(missing)} readings neither stored nor deleted, e.g. {sorted(missing)[:5]}")
            extra = (stored.keys() | deleted) - expected.keys()
            self.assertFalse(extra, f"{len(extra)} keys nobody produced, e.g. {sorted(extra)[:5]}")
            differing = [k for k, v in stored.items() if expected[k] != v]
            self.assertFalse(differing, f"stored with other fields: {differing[:5]}")

            # Counted: the pass summaries add up to the deleted keys.
            summed = sum(int(a) + int(b) + int(c) for a, b, c in PASS_SUMMARY.findall(log))
            self.assertEqual(summed, len(deleted))
            self.assertGreater(len(deleted), 0)
            self.assertGreater(len(produced), 10_000)
            print(f"produced {len(produced)}, seeded {len(seeded)}, stored {len(stored)}, deleted {len(deleted)} "
                  f"(of them {len(deleted & produced.keys())} readers' readings)", flush=True)


if __name__ == "__main__":
    unittest.main()
