"""fieldlink dead-letters against real dead letters of a running gateway: list,
--show (hex dump, topic, error) and --replay, before and after the fix that
docs/operations.md describes for a device_mismatch (the gateway relearns which
device owns an incarnation when it restarts)."""

import json
import re
import subprocess
import unittest

from cli_common import batch, fl, h, iso

INCARNATION = 0xB1
INTRUDER = [(0, 1000, 1.0), (0, 2000, 2.0), (0, 3000, 3.0)]
BETA = [(1, 10, 20.5), (1, 20, -3.25), (2, 30, 1e-9), (2, 40, 7.0)]


def publish(port, topic, payload):
    subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-q", "1", "-t", topic, "-s"],
                   input=payload, check=True, timeout=30)


def letters(db):
    return h.query(db, "SELECT id, received_unix_ms, topic, error, payload FROM dead_letters ORDER BY id")


def readings(db, device):
    return h.query(db, "SELECT incarnation, seq, channel, mono_ms, value FROM readings WHERE device = ? ORDER BY seq",
                   device)


def undump(text):
    """The payload bytes back from a hex dump (offset, 16 bytes in hex, |ascii|)."""
    data = b""
    for line in text.splitlines():
        m = re.fullmatch(r"([0-9a-f]{8})  (.{49}) \|(.*)\|", line)
        assert m, f"not a hex dump line: {line!r}"
        assert int(m.group(1), 16) == len(data), line
        chunk = bytes.fromhex(m.group(2).replace(" ", ""))
        assert m.group(3) == "".join(chr(b) if 0x20 <= b < 0x7f else "." for b in chunk), line
        data += chunk
    return data


class DeadLetters(unittest.TestCase):
    def test_list_show_and_replay_after_a_fix(self):
        with h.workdir("cli-dead") as wd:
            broker = h.Mosquitto(wd)
            db = wd / "fieldlink.db"
            self.gateways = [h.Gateway(wd, broker.port, db)]
            try:
                broker.start()
                self.gateways[0].start()
                self.run_case(wd, broker, db)
            finally:
                for g in self.gateways:
                    g.stop()
                broker.stop()

    def wait_stored(self, db, device, n):
        h.wait_for(lambda: db.exists() and h.query(db, "PRAGMA user_version")[0][0] > 0
                   and len(readings(db, device)) >= n, 30, f"{n} readings of {device}")

    def run_case(self, wd, broker, db):
        config = wd / "gateway.toml"
        config.write_text(f'[database]\npath = "{db}"\n[mqtt]\nbroker = "{broker.uri}"\n')
        # A probe first: once it is stored, the gateway is subscribed.
        h.wait_for(lambda: publish(broker.port, "fieldlink/v1/probe/up", batch(0x99, 1, [(0, 1, 1.0)])) or
                   (db.exists() and h.query(db, "PRAGMA user_version")[0][0] > 0 and readings(db, "probe")),
                   30, "the gateway to store a probe", interval=0.5)
        # intruder claims beta's incarnation first, so beta's batch is a device_mismatch.
        publish(broker.port, "fieldlink/v1/intruder/up", batch(INCARNATION, 1, INTRUDER))
        self.wait_stored(db, "intruder", 3)
        good = batch(INCARNATION, 1, BETA)
        publish(broker.port, "fieldlink/v1/beta/up", good)
        corrupt = good[:-1] + bytes([good[-1] ^ 0xFF])
        publish(broker.port, "fieldlink/v1/beta/up", corrupt)
        h.wait_for(lambda: len(letters(db)) == 2, 30, "two dead letters")
        (mismatch_id, t1, topic1, error1, payload1), (corrupt_id, t2, topic2, error2, payload2) = letters(db)
        self.assertEqual((topic1, error1, payload1), ("fieldlink/v1/beta/up", "device_mismatch", good))
        self.assertEqual((topic2, error2, payload2), ("fieldlink/v1/beta/up", "bad_checksum", corrupt))
        self.assertEqual(readings(db, "beta"), [])

        # --- list
        r = fl("--config", config, "dead-letters")
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        self.assertEqual(lines[0].split(), ["ID", "TIME", "(UTC)", "TOPIC", "ERROR", "SIZE"])
        self.assertEqual([x.split() for x in lines[1:-1]],
                         [[str(mismatch_id), iso(t1), topic1, error1, str(len(good))],
                          [str(corrupt_id), iso(t2), topic2, error2, str(len(corrupt))]])
        self.assertEqual(lines[-1], "(2 dead letters)")
        listed = json.loads(fl("--db", db, "dead-letters", "--json").stdout)
        self.assertEqual(listed, [
            {"id": i, "received_unix_ms": t, "time": iso(t), "topic": topic, "error": e, "size": len(p)}
            for i, t, topic, e, p in letters(db)])
        only = json.loads(fl("--db", db, "dead-letters", "--json", "--error", "bad_checksum").stdout)
        self.assertEqual([x["id"] for x in only], [corrupt_id])
        self.assertEqual([x["id"] for x in json.loads(fl("--db", db, "dead-letters", "--json", "-n", "1").stdout)],
                         [mismatch_id])
        self.assertEqual(json.loads(fl("--db", db, "dead-letters", "--json", "--since", f"@{t2 + 1}").stdout), [])
        self.assertEqual(len(json.loads(fl("--db", db, "dead-letters", "--json", "--since", f"@{t1}").stdout)), 2)

        # --- show
        r = fl("--db", db, "dead-letters", "--show", corrupt_id)
        self.assertEqual(r.returncode, 0, r.stderr)
        head, dump = r.stdout.split("\n\n", 1)
        self.assertEqual(head.splitlines(), [f"id       {corrupt_id}", f"time     {iso(t2)}", f"topic    {topic2}",
                                             "error    bad_checksum", f"size     {len(corrupt)} bytes"])
        self.assertEqual(undump(dump), corrupt)
        self.assertTrue(dump.startswith("00000000  46 4c 01 01 b1 00 00 00  00 00 00 00 01 00 00 00  |FL.............."
                                        "|\n"), dump)
        shown = json.loads(fl("--db", db, "dead-letters", "--show", mismatch_id, "--json").stdout)
        self.assertEqual(shown, {"id": mismatch_id, "received_unix_ms": t1, "time": iso(t1), "topic": topic1,
                                 "error": "device_mismatch", "size": len(good), "payload_hex": good.hex()})
        r = fl("--db", db, "dead-letters", "--show", 999)
        self.assertEqual(r.returncode, 1)
        self.assertIn("no dead letter with id 999", r.stderr)

        # --- replay before the fix: rejected again, as a new dead letter; the first one stays.
        r = fl("--config", config, "dead-letters", "--replay", mismatch_id)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, f"replayed {mismatch_id} (device_mismatch, {len(good)} bytes) to {topic1}\n"
                                   f"1 dead letter(s) republished on {broker.uri}; they stay in the database\n")
        h.wait_for(lambda: len(letters(db)) == 3, 30, "the replay to be dead-lettered again")
        self.assertEqual(letters(db)[2][2:], (topic1, "device_mismatch", good))
        self.assertEqual(readings(db, "beta"), [])

        # --- the fix: a restarted gateway relearns ownership from the first batch it gets.
        self.gateways[0].stop()
        self.gateways.append(h.Gateway(wd, broker.port, db).start())
        r = fl("--config", config, "dead-letters", "--replay", mismatch_id)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.wait_stored(db, "beta", len(BETA))
        self.assertEqual(readings(db, "beta"), [(INCARNATION, i + 1, ch, mono, v) for i, (ch, mono, v) in
                                                enumerate(BETA)])
        # Replayed again it is only a duplicate. The corrupt one, replayed after it on the same
        # connection, fails again; once its new dead letter is there, the first was handled.
        r = fl("--db", db, "dead-letters", "--broker", broker.uri, "--replay", mismatch_id, "--replay", corrupt_id)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("2 dead letter(s) republished", r.stdout)
        h.wait_for(lambda: len(letters(db)) == 4, 30, "the corrupt replay's dead letter")
        self.assertEqual(letters(db)[3][2:], (topic2, "bad_checksum", corrupt))
        self.assertEqual(len(readings(db, "beta")), len(BETA))
        self.assertEqual(h.query(db, "SELECT COUNT(*) FROM readings WHERE device = 'beta'")[0][0], len(BETA))
        self.assertEqual([x[0] for x in letters(db)[:2]], [mismatch_id, corrupt_id])  # never deleted by replay

        # --all replays the selection.
        r = fl("--db", db, "dead-letters", "--broker", broker.uri, "--replay-all", "--error", "bad_checksum")
        self.assertEqual(r.returncode, 2)  # no such option: it is --all
        r = fl("--db", db, "dead-letters", "--broker", broker.uri, "--all", "--error", "bad_checksum")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("2 dead letter(s) republished", r.stdout)
        h.wait_for(lambda: len(letters(db)) == 6, 30, "two more bad_checksum dead letters")

        # Errors name their cause.
        r = fl("--db", db, "dead-letters", "--broker", f"tcp://127.0.0.1:{h.free_port()}", "--timeout", "2",
               "--replay", mismatch_id)
        self.assertEqual(r.returncode, 1)
        self.assertIn("cannot connect to broker", r.stderr)
        r = fl("--db", db, "dead-letters", "--broker", broker.uri, "--replay", 999)
        self.assertEqual(r.returncode, 1)
        self.assertIn("no dead letter with id 999", r.stderr)
        self.assertEqual(fl("--db", db, "dead-letters", "--show", 1, "--replay", 1).returncode, 2)


if __name__ == "__main__":
    unittest.main()
