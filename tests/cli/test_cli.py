"""fieldlink against a database the real gateway built from real readers, plus a few
JSON batches typed in with mosquitto_pub whose times the test chooses (so the
time filters are checked at their exact edges)."""

import csv
import io
import json
import re
import subprocess
import time
import unittest

from cli_common import COLUMNS, batch, fl, fl_raw, from_csv, h, iso, json_value, stored_rows

HOUR = 3_600_000


def publish(port, topic, payload):
    subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-q", "1", "-t", topic, "-s"],
                   input=payload.encode() if isinstance(payload, str) else payload, check=True, timeout=30)


# Values at the edges of what the text forms must carry (-0.0 is stored as 0.0).
EDGE_VALUES = [float("inf"), float("-inf"), -0.0, 1.7976931348623157e308, 5e-324, -2.2250738585072014e-308]
TYPED_IN = 3 + 5 + len(EDGE_VALUES)  # gamma, delta, epsilon


def count(db, where="1", *args):
    return h.query(db, f"SELECT COUNT(*) FROM readings WHERE {where}", *args)[0][0]


class Commands(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls._wd = h.workdir("cli")
        cls.wd = cls._wd.__enter__()
        try:
            cls.build()
        except BaseException:
            cls._wd.__exit__(None, None, None)
            raise

    @classmethod
    def build(cls):
        broker = h.Mosquitto(cls.wd)
        cls.db = cls.wd / "fieldlink.db"
        gateway = h.Gateway(cls.wd, broker.port, cls.db)
        readers = [
            h.Reader(cls.wd, "alpha", broker.port, ["--channels", "2", "--period", "20", "--duration", "3",
                                                    "--telemetry-interval", "1", "--drain-timeout", "30"]),
            h.Reader(cls.wd, "beta", broker.port, ["--channels", "3", "--period", "30", "--duration", "3",
                                                   "--drain-timeout", "30"]),
        ]
        try:
            broker.start()
            gateway.start()
            for r in readers:
                r.start()
            # Once readings arrive the gateway is subscribed, so what mosquitto_pub sends reaches it.
            h.wait_for(lambda: cls.db.exists() and h.query(cls.db, "PRAGMA user_version")[0][0] > 0
                       and count(cls.db) > 0, 30, "the first readings")
            # gamma never learns the time: its rows stay unsynchronised.
            publish(broker.port, "fieldlink/v1/gamma/up", json.dumps(
                {"v": 1, "incarnation": "00000000000000c1", "first_seq": 1,
                 "readings": [{"ch": 0, "t": 100, "v": 1.5}, {"ch": 1, "t": 100, "v": -2.25},
                              {"ch": 0, "t": 200, "v": 1e-7}]}))
            # delta's wall time is known: readings 2 h ago (on a millisecond edge) up to a few minutes ago.
            cls.t0 = (int(time.time() * 1000) - 2 * HOUR) // 1000 * 1000 + 7
            cls.delta_t = [0, 1, 999, 1000, 7_000_000]
            publish(broker.port, "fieldlink/v1/delta/up", json.dumps(
                {"v": 1, "incarnation": "00000000000000d1", "first_seq": 1, "boot": 2, "wall_offset_ms": cls.t0,
                 "readings": [{"ch": 5, "t": t, "v": 0.1 * i} for i, t in enumerate(cls.delta_t)]}))
            # epsilon: a binary batch with values at the edges of the number formats.
            publish(broker.port, "fieldlink/v1/epsilon/up",
                    batch(0xE1, 1, [(3, 10 * i, v) for i, v in enumerate(EDGE_VALUES)]))
            for r in readers:
                self_code = r.wait(timeout=60)
                assert self_code == 0, f"{r.name} exited {self_code}:\n{r.log()}"
            h.wait_for(lambda: count(cls.db, "device IN ('gamma', 'delta', 'epsilon')") == TYPED_IN, 20,
                       "the typed-in batches")
            cls.produced = h.read_produced([r.record_file for r in readers])
            h.wait_for(lambda: count(cls.db) == len(cls.produced) + TYPED_IN, 20, "every reading stored")
        finally:
            for r in readers:
                r.stop()
            gateway.stop()
            broker.stop()
        cls.rows = stored_rows(cls.db)

    @classmethod
    def tearDownClass(cls):
        cls._wd.__exit__(None, None, None)

    def query(self, *args):
        r = fl("--db", self.db, "query", *args)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout

    def ndjson(self, *args):
        return [self.from_json(x) for x in self.query("--ndjson", *args).splitlines()]

    @staticmethod
    def from_json(obj):
        if isinstance(obj, str):
            obj = json.loads(obj)
        return {**obj, "value": json_value(obj["value"])}

    def ids(self, *args):
        return [x["id"] for x in self.ndjson(*args)]

    def expected_ids(self, keep):
        return [r["id"] for r in self.rows if keep(r)]

    # --- output formats: every column of every row, against the same file read with sqlite3

    def test_csv_is_the_database(self):
        raw = fl_raw("--db", self.db, "query", "--csv").stdout
        self.assertTrue(raw.endswith(b"\r\n") and raw.count(b"\r\n") == raw.count(b"\n"), "CSV lines end in CRLF")
        text = raw.decode()
        reader = csv.DictReader(io.StringIO(text, newline=""))
        self.assertEqual(reader.fieldnames, COLUMNS)
        self.assertEqual([from_csv(x) for x in reader], self.rows)
        self.assertEqual(len(self.rows), len(self.produced) + TYPED_IN)
        self.assertEqual([r["value"] for r in self.rows if r["device"] == "epsilon"], EDGE_VALUES)
        # Unsynchronised rows are empty fields; synchronised ones carry the time text.
        self.assertTrue(any(r["unix_ms"] is None for r in self.rows))
        self.assertTrue(any(r["unix_ms"] is not None for r in self.rows))

    def test_piped_query_defaults_to_csv(self):
        self.assertEqual(self.query(), self.query("--csv"))

    def test_json_array_is_complete(self):
        text = self.query("--json")
        self.assertEqual([self.from_json(x) for x in json.loads(text)], self.rows)
        self.assertIn('"value":"-inf"', text)  # JSON has no infinity
        self.assertEqual(json.loads(self.query("--json", "--device", "nobody")), [])
        self.assertEqual(self.query("--json", "--device", "nobody"), "[]\n")

    def test_ndjson_is_one_object_per_reading(self):
        lines = self.query("--ndjson").splitlines()
        self.assertEqual(len(lines), len(self.rows))
        self.assertEqual([self.from_json(x) for x in lines], self.rows)
        self.assertTrue(all(x.startswith("{") and x.endswith("}") for x in lines))
        self.assertEqual(self.query("--ndjson", "--device", "nobody"), "")

    def test_table_is_aligned(self):
        lines = self.query("--table").splitlines()
        header, body, footer = lines[0], lines[1:-1], lines[-1]
        self.assertEqual(header.split(), ["TIME", "(UTC)", "DEVICE", "INCARNATION", "BOOT", "SEQ", "CH", "MONO_MS",
                                          "VALUE"])
        self.assertEqual(footer, f"({len(self.rows)} rows)")
        self.assertEqual(len(body), len(self.rows))
        # Fixed widths: every row as long as the header, columns at the same places.
        self.assertEqual({len(x) for x in body}, {len(header)})
        ends = [m.end() for m in re.finditer(r"BOOT|SEQ|CH|MONO_MS|VALUE", header)]  # right-aligned columns
        starts = [m.start() for m in re.finditer(r"DEVICE|INCARNATION", header)]  # left-aligned columns
        for line, r in zip(body, self.rows):
            self.assertEqual(line.split(), [r["time"] or "(unsynchronised)", r["device"], r["incarnation"],
                                            str(r["boot"]), str(r["seq"]), str(r["channel"]), str(r["mono_ms"]),
                                            line.split()[-1]])
            self.assertEqual(float(line.split()[-1]), r["value"])
            self.assertTrue(all(line[e - 1] != " " and (e == len(line) or line[e] == " ") for e in ends), line)
            self.assertTrue(all(line[s] != " " and line[s - 1] == " " for s in starts), line)

    # --- devices

    def test_devices_json_is_the_database(self):
        r = fl("--db", self.db, "devices", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        devices = {d["device"]: d for d in json.loads(r.stdout)}
        self.assertEqual(sorted(devices), ["alpha", "beta", "delta", "epsilon", "gamma"])
        for name, d in devices.items():
            readings, unsynced, last = h.query(
                self.db, "SELECT COUNT(*), SUM(unix_ms IS NULL), MAX(received_unix_ms) FROM readings WHERE device = ?",
                name)[0]
            self.assertEqual((d["readings"], d["unsynchronised"], d["last_reading_unix_ms"]),
                             (readings, unsynced, last), name)
            status = h.query(self.db,
                             "SELECT online, incarnation, boot, firmware_version FROM devices WHERE device = ?", name)
            if status:
                online, inc, boot, firmware = status[0]
                self.assertEqual((d["online"], d["incarnation"], d["boot"], d["firmware"]),
                                 (bool(online), f"{h.u64(inc):016x}", boot, firmware), name)
            marks = dict(((h.u64(i), w) for i, w in h.query(
                self.db, "SELECT incarnation, watermark FROM watermarks WHERE device = ?", name)))
            self.assertEqual(d["watermark"], marks.get(int(d["incarnation"], 16)), name)
            health = h.query(self.db, "SELECT received_unix_ms, held, oldest_unacked_age_ms, dropped, reconnects"
                                      " FROM device_health WHERE device = ? ORDER BY id DESC LIMIT 1", name)
            if health:
                self.assertEqual(d["telemetry"], dict(zip(["received_unix_ms", "spool_depth", "oldest_unacked_age_ms",
                                                           "dropped", "reconnects"], health[0])), name)
            else:
                self.assertIsNone(d["telemetry"], name)
            self.assertGreaterEqual(d["last_seen_unix_ms"], last)
        # The readers: status and acks seen; alpha sent telemetry; gamma and delta only typed-in batches.
        self.assertEqual(devices["alpha"]["firmware"], devices["beta"]["firmware"])
        self.assertIsNotNone(devices["alpha"]["firmware"])
        self.assertIsNotNone(devices["alpha"]["telemetry"])
        self.assertEqual(devices["alpha"]["watermark"], max(k[2] for k in self.produced if k[0] == "alpha"))
        self.assertEqual((devices["gamma"]["online"], devices["gamma"]["unsynchronised"]), (None, 3))
        self.assertEqual((devices["delta"]["incarnation"], devices["delta"]["watermark"]), ("00000000000000d1", 5))

    def test_devices_table_has_a_row_per_device(self):
        r = fl("--db", self.db, "devices")
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        self.assertEqual(lines[0].split()[:4], ["DEVICE", "ONLINE", "FIRMWARE", "INCARNATION"])
        self.assertEqual([x.split()[0] for x in lines[1:-1]], ["alpha", "beta", "delta", "epsilon", "gamma"])
        self.assertEqual(lines[-1], "(5 devices)")
        delta = lines[3].split()
        self.assertEqual(delta[1:4], ["-", "-", "00000000000000d1"])

    # --- selection

    def test_since_inclusive_until_exclusive_iso(self):
        t0 = self.t0
        edge = t0 + 1000  # delta's fourth reading is exactly here
        delta = [t0 + t for t in self.delta_t]
        at = self.ndjson("--since", iso(edge), "--until", iso(edge + 1))
        self.assertEqual([x["unix_ms"] for x in at], [edge])  # [since, until): only the reading at `since`
        self.assertEqual([x["unix_ms"] for x in self.ndjson("--device", "delta", "--until", iso(edge))],
                         [t for t in delta if t < edge])
        self.assertEqual([x["unix_ms"] for x in self.ndjson("--device", "delta", "--since", iso(edge))],
                         [t for t in delta if t >= edge])
        # The same instant with a zone offset, and to the second (no fraction: .000).
        plus2 = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(edge // 1000 + 7200)) + f".{edge % 1000:03d}+02:00"
        self.assertEqual(self.ids("--since", plus2, "--until", iso(edge + 1)), [x["id"] for x in at])
        whole = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t0 // 1000))  # t0 is 7 ms past this second
        self.assertEqual([x["unix_ms"] for x in self.ndjson("--device", "delta", "--until", whole)], [])
        self.assertEqual(len(self.ndjson("--device", "delta", "--since", whole)), 5)
        # Together the two sides are every synchronised row, once.
        self.assertEqual(sorted(self.ids("--until", iso(edge)) + self.ids("--since", iso(edge))),
                         self.expected_ids(lambda r: r["unix_ms"] is not None))
        # Epoch milliseconds.
        self.assertEqual(self.ids("--since", f"@{t0}", "--until", f"@{t0 + 1}"), self.expected_ids(
            lambda r: r["unix_ms"] == t0))

    def test_relative_times(self):
        recent = lambda r: r["unix_ms"] is not None and r["unix_ms"] >= time.time() * 1000 - HOUR  # noqa: E731
        self.assertEqual([x["unix_ms"] for x in self.ndjson("--device", "delta", "--since", "-1h")],
                         [self.t0 + self.delta_t[-1]])
        self.assertEqual(len(self.ndjson("--device", "delta", "--until", "-1h")), 4)
        self.assertEqual(len(self.ndjson("--device", "delta", "--since", "-3h")), 5)
        self.assertEqual(len(self.ndjson("--device", "delta", "--since", "-121m", "--until", "-119m")), 4)
        self.assertEqual(self.ids("--since", "-1h"), self.expected_ids(recent))
        self.assertEqual(self.ids("--since", "now"), [])
        self.assertEqual(self.ids("--until", "now"), self.expected_ids(lambda r: r["unix_ms"] is not None))

    def test_unsynchronised_rows_match_only_received_time(self):
        self.assertNotIn("gamma", {x["device"] for x in self.ndjson("--since", "-1w")})
        got = self.ndjson("--received", "--since", "-1h")
        self.assertEqual([x["id"] for x in got], [r["id"] for r in self.rows])
        first = min(r["received_unix_ms"] for r in self.rows)
        self.assertEqual(self.ids("--received", "--until", f"@{first}"), [])
        self.assertEqual(self.ids("--received", "--until", f"@{first + 1}"),
                         self.expected_ids(lambda r: r["received_unix_ms"] == first))

    def test_bad_time_is_a_usage_error(self):
        for bad in ("yesterday", "2026-02-30", "-1y", "2026-12-02T25:00Z", "@12x"):
            r = fl("--db", self.db, "query", "--since", bad)
            self.assertEqual(r.returncode, 2, (bad, r.stderr))
            self.assertIn('--since: must be an ISO 8601 time', r.stderr)
            self.assertIn(f'got "{bad}"', r.stderr)
            self.assertEqual(r.stdout, "")

    def test_channel(self):
        self.assertEqual(self.ids("--channel", "1"), self.expected_ids(lambda r: r["channel"] == 1))
        self.assertEqual(self.ids("-c", "0", "--channel", "2"), self.expected_ids(lambda r: r["channel"] in (0, 2)))
        self.assertEqual(self.ids("--channel", "5"), self.expected_ids(lambda r: r["device"] == "delta"))
        self.assertEqual(self.ids("--channel", "9"), [])
        self.assertEqual(fl("--db", self.db, "query", "--channel", "256").returncode, 2)

    def test_device_glob(self):
        for glob, keep in [("alpha", {"alpha"}), ("al*", {"alpha"}), ("?eta", {"beta"}), ("[bg]*", {"beta", "gamma"}),
                           ("*a", {"alpha", "beta", "delta", "gamma"}),
                           ("*", {"alpha", "beta", "delta", "epsilon", "gamma"}), ("ALPHA", set()), ("alph", set())]:
            self.assertEqual(self.ids("--device", glob), self.expected_ids(lambda r: r["device"] in keep), glob)
        self.assertEqual(self.ids("-d", "gamma", "--channel", "0"),
                         self.expected_ids(lambda r: r["device"] == "gamma" and r["channel"] == 0))

    def test_limit(self):
        self.assertEqual(self.ids("--limit", "3"), [r["id"] for r in self.rows[:3]])
        self.assertEqual(self.ids("-n", "2", "--device", "beta", "--channel", "2"),
                         self.expected_ids(lambda r: r["device"] == "beta" and r["channel"] == 2)[:2])
        self.assertEqual(self.ids("--limit", "0"), [r["id"] for r in self.rows])  # 0: all
        self.assertEqual(self.ids("--limit", str(len(self.rows) + 5)), [r["id"] for r in self.rows])
        self.assertEqual(len(json.loads(self.query("--json", "--limit", "1"))), 1)
        self.assertEqual(fl("--db", self.db, "query", "--limit", "-1").returncode, 2)

    def test_one_format_only(self):
        self.assertEqual(fl("--db", self.db, "query", "--csv", "--json").returncode, 2)

    # --- export

    def test_export_zstd_is_the_query(self):
        out = self.wd / "readings.csv.zst"
        r = fl_raw("--db", self.db, "export", "-o", out)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn(b"\r", r.stderr)  # no progress bar when not on a terminal
        self.assertEqual(r.stderr.decode(), f"fieldlink export: {len(self.rows)} rows to {out} (csv, zstd)\n")
        data = subprocess.run(["zstd", "-dc", out], capture_output=True, check=True).stdout
        self.assertEqual(data, fl_raw("--db", self.db, "query", "--csv").stdout)
        self.assertFalse(out.with_name(out.name + ".part").exists())

    def test_export_ndjson_with_a_selection(self):
        out = self.wd / "beta.ndjson"
        r = fl("--db", self.db, "export", "-o", out, "--device", "beta", "--channel", "1", "--limit", "7")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("7 rows to", r.stderr)
        self.assertEqual([self.from_json(x) for x in out.read_text().splitlines()],
                         [x for x in self.rows if x["device"] == "beta" and x["channel"] == 1][:7])
        forced = self.wd / "forced.txt"
        self.assertEqual(fl("--db", self.db, "export", "-o", forced, "--format", "ndjson").returncode, 0)
        self.assertEqual([self.from_json(x) for x in forced.read_text().splitlines()], self.rows)

    def test_export_progress_bar_when_asked(self):
        out = self.wd / "progress.csv"
        r = fl_raw("--db", self.db, "export", "-o", out, "--progress", "always")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b"\r[", r.stderr)
        self.assertIn(f"100%  {len(self.rows)}/{len(self.rows)} rows".encode(), r.stderr)

    def test_export_to_an_unwritable_place_names_it(self):
        r = fl("--db", self.db, "export", "-o", self.wd / "no-such-dir" / "x.csv")
        self.assertEqual(r.returncode, 1)
        self.assertIn("no-such-dir/x.csv.part", r.stderr)

    # --- status

    def test_status_json_is_the_database(self):
        r = fl("--db", self.db, "status", "--json", "--max-silence", "0")
        self.assertEqual(r.returncode, 0, r.stderr)
        s = json.loads(r.stdout)
        self.assertTrue(s["healthy"])
        self.assertEqual(s["readings"]["stored"], len(self.rows))
        self.assertEqual(s["readings"]["oldest_received_unix_ms"], min(x["received_unix_ms"] for x in self.rows))
        self.assertEqual(s["readings"]["newest_received_unix_ms"], max(x["received_unix_ms"] for x in self.rows))
        self.assertEqual(s["devices"]["known"], 5)
        self.assertEqual(s["devices"]["online"], h.query(self.db, "SELECT COUNT(*) FROM devices WHERE online")[0][0])
        self.assertEqual(s["dead_letters"], {})
        self.assertEqual(s["upstreams"], [])
        self.assertEqual(s["database"]["schema_version"], h.query(self.db, "PRAGMA user_version")[0][0])
        self.assertTrue(all(c["ok"] for c in s["checks"]), s["checks"])
        text = fl("--db", self.db, "status", "--max-silence", "0").stdout
        self.assertTrue(text.startswith("HEALTHY\n"), text)
        self.assertIn(f"readings   {len(self.rows)} stored", text)
        self.assertIn("devices    5 known", text)

    def test_status_exit_codes(self):
        self.assertEqual(fl("--db", self.db, "status", "--max-silence", "0").returncode, 0)
        r = fl("--db", self.db, "status", "--min-free-disk", str(1 << 62))
        self.assertEqual(r.returncode, 1)
        self.assertTrue(r.stdout.startswith("UNHEALTHY"), r.stdout)
        self.assertEqual(fl("--db", self.db, "status", "--no-such-option").returncode, 2)

    # --- errors and config

    def test_errors_name_the_cause(self):
        r = fl("--db", self.wd / "missing.db", "devices")
        self.assertEqual(r.returncode, 1)
        self.assertIn("missing.db", r.stderr)
        other = self.wd / "other.db"
        subprocess.run(["sqlite3", other, "CREATE TABLE t(x);"], check=True)
        for command in (["devices"], ["query"], ["status"], ["dead-letters"]):
            r = fl("--db", other, *command)
            self.assertEqual(r.returncode, 1, command)
            self.assertIn("is not a fieldlink database", r.stderr)
        self.assertEqual(json.loads(fl("--db", self.db, "dead-letters", "--json").stdout), [])

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

    def test_config_gives_the_database(self):
        config = self.wd / "db.toml"
        config.write_text(f"[database]\npath = \"{self.db}\"\n")
        self.assertEqual(fl("--config", config, "query", "--csv").stdout, self.query("--csv"))
        r = fl("--config", self.wd / "none.toml", "devices")
        self.assertEqual(r.returncode, 2)
        self.assertIn("none.toml", r.stderr)


if __name__ == "__main__":
    unittest.main()
