"""300 devices from fieldlink-loadgen against the real gateway and a real Mosquitto.

Checks what must hold at any load, never how fast: every reading the load generator saw acked
is in SQLite exactly once and nothing else is there (exact sets), every device's watermark is
its last reading, and the gateway keeps working while its per-device state is held to its bound.

The bound: the gateway's per-device state (watermark tracker, boot clocks, drop counts; see
SaverSettings in gateway/ingest/include/fieldlink/gateway/ingest/saver.hpp) is an LRU cache of at
most `max_incarnations` entries, reloaded from the database when an evicted device comes back.
The gateway exposes no count of it (not in the stats line), so the test runs the gateway with
max_incarnations 100, a third of the devices, and then makes the result depend on the reload:
in round 2 the same 300 incarnations continue from seq 33 with floor_seq 1, so an ack above 32
is only possible if the gateway knows (from its cache or reloaded from SQLite) that 1..32 are
stored. A cache that lost state instead of reloading it would leave round 2 unacked.
"""

import contextlib
import json
import os
import resource
import subprocess
import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
import harness as h  # noqa: E402

LOADGEN = os.environ.get("FIELDLINK_LOADGEN", "fieldlink-loadgen")
DEVICES = 300
BATCH = 8
ROUND1_BATCHES = 4
ROUND2_BATCHES = 3
MAX_INCARNATIONS = 100  # well below DEVICES: the gateway must evict and reload


def raise_fd_limit(needed):
    """Mosquitto (one descriptor per connection) and the load generator inherit this limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            raise unittest.SkipTest(f"needs {needed} file descriptors, the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


def read_keys(path):
    keys = []
    for line in Path(path).read_text().splitlines():
        device, incarnation, seq = line.split(",")
        keys.append((device, int(incarnation, 16), int(seq)))
    return keys


def gateway_peak_rss_kib(gateway):
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{gateway.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return None


class ManyDevices(unittest.TestCase):
    def loadgen(self, wd, name, port, start_seq, batches, extra=()):
        argv = [LOADGEN, "--port", port, "--devices", DEVICES, "--batch", BATCH, "--batches", batches,
                "--window", 2, "--start-seq", start_seq, "--seed", 7, "--ack-timeout-ms", 1000,
                "--connect-parallel", 100, "--drain-timeout", 60, "--timeout", 120,
                "--dump-acked", wd / f"{name}.acked.csv", "--dump-unacked", wd / f"{name}.unacked.csv", *extra]
        done = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=180)
        self.assertEqual(done.returncode, 0, f"{name}: loadgen exit {done.returncode}\n{done.stdout}\n{done.stderr}")
        summary = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"{name}: {summary}", file=sys.stderr)
        self.assertEqual(summary["devices_complete"], DEVICES, summary)
        self.assertEqual(summary["readings_acked"], DEVICES * batches * BATCH, summary)
        self.assertEqual(read_keys(wd / f"{name}.unacked.csv"), [], f"{name}: readings sent and never acked")
        return read_keys(wd / f"{name}.acked.csv")

    def test_exact_sets_with_bounded_device_state(self):
        raise_fd_limit(DEVICES + 512)
        with h.workdir("load") as wd:
            broker = h.Mosquitto(wd).start()
            db = wd / "fieldlink.db"
            gateway = h.Gateway(wd, broker.port, db, ["--max-incarnations", MAX_INCARNATIONS]).start()
            try:
                h.wait_for(lambda: "subscribed to" in gateway.log() or not gateway.running(), 20,
                           "the gateway to subscribe")
                self.assertTrue(gateway.running(), gateway.log())

                first = self.loadgen(wd, "round1", broker.port, 1, ROUND1_BATCHES)
                last_of_round1 = ROUND1_BATCHES * BATCH
                second = self.loadgen(wd, "round2", broker.port, last_of_round1 + 1, ROUND2_BATCHES,
                                      ["--floor-one", "--no-birth"])
                peak_kib = gateway_peak_rss_kib(gateway)
                print(f"gateway VmHWM {peak_kib} KiB", file=sys.stderr)
            finally:
                gateway.stop()
                broker.stop()

            acked = first + second
            self.assertEqual(len(acked), len(set(acked)), "the load generator reported a reading twice")
            stored, rows = h.read_stored(db)
            missing = set(acked) - stored.keys()
            extra = stored.keys() - set(acked)
            self.assertFalse(missing, f"{len(missing)} acked readings not stored, e.g. {sorted(missing)[:5]}")
            self.assertFalse(extra, f"{len(extra)} stored readings never acked, e.g. {sorted(extra)[:5]}")
            self.assertEqual(rows, len(stored), "duplicate rows")
            total = DEVICES * (ROUND1_BATCHES + ROUND2_BATCHES) * BATCH
            self.assertEqual(rows, total)

            marks = h.query(db, "SELECT device, watermark FROM watermarks")
            self.assertEqual(len(marks), DEVICES)
            self.assertEqual({m for _, m in marks}, {(ROUND1_BATCHES + ROUND2_BATCHES) * BATCH})
            self.assertEqual(h.query(db, "SELECT count(*) FROM devices")[0][0], DEVICES, "birth statuses")

            stopped = [line for line in gateway.log().splitlines() if "stopped: " in line]
            self.assertTrue(stopped, gateway.log()[-2000:])
            stats = dict(kv.split("=", 1) for kv in stopped[-1].split("stopped: ", 1)[1].split() if "=" in kv)
            self.assertEqual(int(stats["stored"]), total, stopped[-1])
            self.assertEqual(int(stats["commit_failures"]), 0, stopped[-1])
            self.assertEqual(int(stats["malformed"]), 0, stopped[-1])


if __name__ == "__main__":
    unittest.main()
