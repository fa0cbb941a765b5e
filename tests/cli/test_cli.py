"""fieldlink against a database the real gateway built from real readers."""

import csv
import io
import json
import subprocess
import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
import harness as h  # noqa: E402

import os  # noqa: E402

FIELDLINK = os.environ.get("FIELDLINK", "fieldlink")


def fl(*args):
    return subprocess.run([FIELDLINK, *map(str, args)], capture_output=True, text=True, timeout=120)


class Commands(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls._wd = h.workdir("cli")
        cls.wd = cls._wd.__enter__()
        broker = h.Mosquitto(cls.wd).start()
        cls.db = cls.wd / "fieldlink.db"
        gateway = h.Gateway(cls.wd, broker.port, cls.db).start()
        reader = h.Reader(cls.wd, "alpha", broker.port, ["--channels", "2", "--period", "20", "--duration", "3",
                                                        "--drain-timeout", "30"]).start()
        try:
            reader.wait(timeout=60)
        finally:
            reader.stop()
            gateway.stop()
            broker.stop()

    @classmethod
    def tearDownClass(cls):
        cls._wd.__exit__(None, None, None)

    def test_csv_is_the_database(self):
        r = fl("--db", self.db, "query", "--csv")
        self.assertEqual(r.returncode, 0, r.stderr)
        rows = list(csv.DictReader(io.StringIO(r.stdout)))
        stored = h.query(self.db, "SELECT id, device, incarnation, seq, value FROM readings ORDER BY id")
        self.assertGreater(len(stored), 10)
        self.assertEqual([(int(x["id"]), x["device"], int(x["incarnation"], 16),
                           int(x["seq"]), float(x["value"])) for x in rows],
                         [(i, d, h.u64(inc), s, v) for i, d, inc, s, v in stored])

    def test_json_and_devices(self):
        r = fl("--db", self.db, "query", "--json")
        self.assertEqual(len(json.loads(r.stdout)), h.query(self.db, "SELECT COUNT(*) FROM readings")[0][0])
        d = json.loads(fl("--db", self.db, "devices", "--json").stdout)
        self.assertEqual([x["device"] for x in d], ["alpha"])

    def test_ndjson_one_object_per_reading(self):
        r = fl("--db", self.db, "query", "--ndjson", "--device", "al*")
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        self.assertEqual(len(lines), h.query(self.db, "SELECT COUNT(*) FROM readings")[0][0])
        self.assertEqual({json.loads(x)["device"] for x in lines}, {"alpha"})
        self.assertEqual(fl("--db", self.db, "query", "--ndjson", "--device", "beta*").stdout, "")

    def test_limit_and_time_edges(self):
        first = h.query(self.db, "SELECT unix_ms FROM readings WHERE unix_ms IS NOT NULL ORDER BY unix_ms LIMIT 1")[0][0]
        at = [json.loads(x)["unix_ms"] for x in
              fl("--db", self.db, "query", "--ndjson", "--since", f"@{first}", "--until", f"@{first + 1}").stdout.splitlines()]
        self.assertTrue(at and all(t == first for t in at), at)  # --since inclusive
        self.assertEqual(fl("--db", self.db, "query", "--ndjson", "--until", f"@{first}").stdout, "")  # --until exclusive
        self.assertEqual(len(fl("--db", self.db, "query", "--ndjson", "--limit", "3").stdout.splitlines()), 3)

    def test_export_zstd_is_the_query(self):
        out = self.wd / "readings.csv.zst"
        r = fl("--db", self.db, "export", "-o", out)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn("\r", r.stderr)  # no progress bar when not on a terminal
        self.assertIn("rows to", r.stderr)
        text = subprocess.run(["zstd", "-dc", out], capture_output=True, text=True, check=True).stdout
        self.assertEqual(text, fl("--db", self.db, "query", "--csv").stdout)

    def test_status_exit_codes(self):
        self.assertEqual(fl("--db", self.db, "status", "--max-silence", "0").returncode, 0)
        self.assertEqual(fl("--db", self.db, "status", "--min-free-disk", str(1 << 62)).returncode, 1)
        self.assertEqual(fl("--db", self.db, "status", "--no-such-option").returncode, 2)
        self.assertIsInstance(json.loads(fl("--db", self.db, "status", "--json").stdout), dict)

    def test_errors_name_the_cause(self):
        r = fl("--db", self.wd / "missing.db", "devices")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("missing.db", r.stderr)
        other = self.wd / "other.db"
        subprocess.run(["sqlite3", other, "CREATE TABLE t(x);"], check=True)
        r = fl("--db", other, "devices")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("fieldlink", r.stderr)
        self.assertEqual(fl("--db", self.db, "dead-letters", "--json").returncode, 0)

    def test_check_config_same_message_as_gateway(self):
        bad = self.wd / "bad.toml"
        bad.write_text("[database]\nbusy_timeout_ms = \"x\"\n")
        r = fl("check-config", bad)
        g = subprocess.run([h.GATEWAY, "--config", bad], capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 2)
        self.assertEqual(r.stderr, g.stderr)
        good = self.wd / "good.toml"
        good.write_text("[database]\npath = \"x.db\"\n")
        self.assertEqual(fl("check-config", good).stdout, "ok\n")


if __name__ == "__main__":
    unittest.main()
