"""Hand-typed input through mosquitto_pub: a JSON batch is stored and acked, a
malformed payload goes to the dead-letter table, and neither blocks a good device."""

import re
import subprocess
import unittest

import harness as h

PROTOCOL_DOC = h.ROOT / "docs" / "protocol.md"


def doc_vector(name):
    """Bytes of a hex vector from docs/protocol.md (the same bytes the unit tests check)."""
    text = PROTOCOL_DOC.read_text()
    m = re.search(rf"<!-- vector: {re.escape(name)} -->\n```text\n(.*?)```", text, re.S)
    assert m, f"no vector {name}"
    return bytes.fromhex(m.group(1).replace("\n", " "))


class BadInput(unittest.TestCase):
    def setUp(self):
        self._wd_cm = h.workdir("bad-input")
        self.wd = self._wd_cm.__enter__()
        self.broker = h.Mosquitto(self.wd).start()
        self.db = self.wd / "fieldlink.db"
        self.gateway = h.Gateway(self.wd, self.broker.port, self.db).start()
        h.wait_for(lambda: "subscribed" in self.gateway.log().lower() or not self.gateway.running(), 20,
                   "gateway to subscribe")
        self.assertTrue(self.gateway.running(), self.gateway.log())

    def tearDown(self):
        self.gateway.stop()
        self.broker.stop()
        self._wd_cm.__exit__(None, None, None)

    def pub(self, topic, payload=None, file=None):
        argv = ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(self.broker.port), "-q", "1", "-t", topic]
        argv += ["-f", str(file)] if file else ["-m", payload]
        subprocess.run(argv, check=True, timeout=20)

    def rows(self, device):
        return h.query(self.db, "SELECT seq, channel, mono_ms, value, unix_ms FROM readings WHERE device = ? "
                       "ORDER BY seq", device)

    def test_json_batch_is_stored_and_acked(self):
        ack_file = self.wd / "ack.bin"
        sub = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(self.broker.port),
                                "-t", "fieldlink/v1/json-dev/ack", "-C", "1", "-W", "30", "-N"],
                               stdout=open(ack_file, "wb"))
        json_batch = ('{"v": 1, "incarnation": "a1", "first_seq": 1, "wall_offset_ms": 1795312677000, '
                      '"readings": [{"ch": 0, "t": 1500, "v": 21.5}, {"ch": 1, "t": 1500, "v": 40.25}]}')
        self.pub("fieldlink/v1/json-dev/up", json_batch)
        rows = h.wait_for(lambda: len(self.rows("json-dev")) == 2 and self.rows("json-dev"), 20, "JSON rows")
        self.assertEqual(rows, [(1, 0, 1500, 21.5, 1795312678500), (2, 1, 1500, 40.25, 1795312678500)])
        # Republishing is harmless (same keys) and brings the ack again if the first raced the subscriber.
        self.pub("fieldlink/v1/json-dev/up", json_batch)
        sub.wait(timeout=40)
        ack = ack_file.read_bytes()
        self.assertEqual(len(ack), 32, "one binary commit ack")
        self.assertEqual(ack[:4], b"FL\x01\x02")
        self.assertEqual(int.from_bytes(ack[4:12], "little"), 0xa1)
        self.assertEqual(int.from_bytes(ack[12:20], "little"), 2, "watermark covers both readings")
        self.assertEqual(len(self.rows("json-dev")), 2, "duplicate batch stored twice")

    def test_malformed_payloads_are_dead_lettered_and_block_nobody(self):
        self.pub("fieldlink/v1/bad-dev/up", "this is not a batch")  # 19 bytes: shorter than any batch
        long_garbage = "x" * 82  # a valid batch length (44 + 2 * 17 + 4), so the magic is checked
        self.pub("fieldlink/v1/bad-dev/up", long_garbage)
        bad_json = '{"v": 1, "incarnation": "a1", "first_seq": 0, "readings": []}'
        self.pub("fieldlink/v1/bad-json/up", bad_json)
        good = self.wd / "good.bin"
        good.write_bytes(doc_vector("batch-unsynced"))
        self.pub("fieldlink/v1/good-dev/up", file=good)

        h.wait_for(lambda: len(self.rows("good-dev")) == 2, 20, "the good batch after the bad ones")
        letters = h.wait_for(
            lambda: (r := h.query(self.db, "SELECT topic, error, payload FROM dead_letters ORDER BY id")) and
            len(r) == 3 and r, 20, "three dead letters")
        self.assertEqual([(t, e) for t, e, _ in letters],
                         [("fieldlink/v1/bad-dev/up", "truncated"), ("fieldlink/v1/bad-dev/up", "bad_magic"),
                          ("fieldlink/v1/bad-json/up", "bad_json")])
        self.assertEqual(bytes(letters[0][2]), b"this is not a batch")
        self.assertEqual(bytes(letters[1][2]), long_garbage.encode())
        self.assertEqual([r[3] for r in self.rows("good-dev")], [21.5, 40.25])
        self.assertTrue(self.gateway.running())


if __name__ == "__main__":
    unittest.main()
