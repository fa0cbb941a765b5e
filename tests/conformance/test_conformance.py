"""Tests of fieldlink-conformance: its codec against the doc's vectors, each check function on
hand-made observations, the real reader passing every check, and each fault of the test double
failing exactly the checks it should."""

import dataclasses
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest
import zlib
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import fieldlink_conformance as fc  # noqa: E402
import wire  # noqa: E402

PROTOCOL_DOC = HERE.parents[1] / "docs" / "protocol.md"
CHECKER = HERE / "fieldlink_conformance.py"
DOUBLE = HERE / "broken_device.py"
READER = os.environ.get("FIELDLINK_READER") or shutil.which("fieldlink-reader")


def doc_vectors():
    """{name: bytes} for every `<!-- vector: NAME -->` block of docs/protocol.md."""
    text = PROTOCOL_DOC.read_text()
    found = re.findall(r"<!-- vector: ([\w-]+) -->\s*```text\n(.*?)```", text, re.S)
    return {name: bytes.fromhex(" ".join(body.split())) for name, body in found}


# --- The codec ----------------------------------------------------------------------------

class WireCodec(unittest.TestCase):
    INC = 0x0123456789ABCDEF

    @classmethod
    def setUpClass(cls):
        cls.vectors = doc_vectors()

    def test_doc_has_the_vectors_this_test_knows(self):
        # The device side's vectors; the doc also has the gateway's forwarded batch (§10).
        self.assertLessEqual({"batch-unsynced", "batch-synced", "ack", "status-online", "status-offline",
                              "telemetry"}, set(self.vectors))

    def test_crc32_parameters(self):
        self.assertEqual(wire.crc32(b"123456789"), 0xCBF43926)
        data = bytes(range(256)) * 3
        self.assertEqual(wire.crc32(data), zlib.crc32(data))

    def test_batch_unsynced(self):
        batch = wire.Batch(self.INC, 1, 1, 0, 0, False,
                           (wire.Record(0, 1500, 21.5), wire.Record(1, 1500, 40.25)))
        self.assertEqual(wire.encode_batch(batch), self.vectors["batch-unsynced"])
        self.assertEqual(wire.decode_batch(self.vectors["batch-unsynced"]), batch)

    def test_batch_synced(self):
        batch = wire.Batch(0xA1, 1000, 990, 3, 1795312677000, True, (wire.Record(2, 123456, -3.75),))
        self.assertEqual(wire.encode_batch(batch), self.vectors["batch-synced"])
        decoded = wire.decode_batch(self.vectors["batch-synced"])
        self.assertEqual(decoded, batch)
        self.assertEqual(decoded.records[0].mono_ms + decoded.wall_offset_ms, 1795312800456)

    def test_ack(self):
        self.assertEqual(wire.encode_ack(self.INC, 2, 1795312800000), self.vectors["ack"])
        self.assertEqual(wire.decode_ack(self.vectors["ack"]), wire.Ack(self.INC, 2, 1795312800000))

    def test_status(self):
        for name, state in (("status-online", wire.ONLINE), ("status-offline", wire.OFFLINE)):
            status = wire.Status(state, self.INC, 0, "0.1.0")
            self.assertEqual(wire.encode_status(status), self.vectors[name], name)
            self.assertEqual(wire.decode_status(self.vectors[name]), status, name)

    def test_telemetry(self):
        t = wire.Telemetry(self.INC, 2, 1, 3600000, 1500, 30000, 0, 4001, 2500)
        self.assertEqual(wire.encode_telemetry(t), self.vectors["telemetry"])
        self.assertEqual(wire.decode_telemetry(self.vectors["telemetry"]), t)

    def assertError(self, code, decode, data):
        with self.assertRaises(wire.WireError) as caught:
            decode(data)
        self.assertEqual(caught.exception.code, code)

    def test_batch_errors_in_the_documented_order(self):
        good = self.vectors["batch-unsynced"]
        self.assertError("truncated", wire.decode_batch, good[:47])
        self.assertError("truncated", wire.decode_batch, good[:-5])
        # Size before framing: too long and not a whole number of records is oversize.
        self.assertError("oversize", wire.decode_batch, good + bytes(9000))
        self.assertError("bad_magic", wire.decode_batch, b"XL" + good[2:])
        self.assertError("unsupported_version", wire.decode_batch, good[:2] + b"\x02" + good[3:])
        self.assertError("wrong_kind", wire.decode_batch, good[:3] + b"\x02" + good[4:])
        self.assertError("bad_checksum", wire.decode_batch, good[:-1] + bytes([good[-1] ^ 1]))

        def resealed(body):
            return body[:-4] + wire.struct.pack("<I", wire.crc32(body[:-4]))
        self.assertError("bad_field", wire.decode_batch, resealed(good[:40] + b"\x02" + good[41:]))
        self.assertError("count_mismatch", wire.decode_batch, resealed(good[:42] + b"\x03\x00" + good[44:]))
        nan = wire.Batch(1, 1, 1, 0, 0, False, (wire.Record(0, 0, 0.0),))
        raw = bytearray(wire.encode_batch(nan))
        raw[53:61] = wire.struct.pack("<d", float("nan"))
        self.assertError("bad_field", wire.decode_batch, resealed(bytes(raw)))

    def test_ack_and_status_errors(self):
        self.assertError("truncated", wire.decode_ack, self.vectors["ack"][:31])
        self.assertError("oversize", wire.decode_ack, self.vectors["ack"] + b"\0")
        self.assertError("bad_checksum", wire.decode_ack, self.vectors["ack"][:-1] + b"\0")
        self.assertError("truncated", wire.decode_status, self.vectors["status-online"][:22])
        self.assertError("bad_field", wire.decode_status, self.vectors["status-online"] + b"\0")
        self.assertError("oversize", wire.decode_telemetry, self.vectors["telemetry"] + b"\0")

    def test_json_batch(self):
        batch = wire.decode_up(b' {"v": 1, "incarnation": "00000000000000a1", "first_seq": 1, "boot": 0, '
                               b'"readings": [{"ch": 0, "t": 1500, "v": 21.5}, {"ch": 1, "t": 1500, "v": 40.25}]}')
        self.assertEqual((batch.form, batch.incarnation, batch.first_seq, batch.floor_seq, batch.floor_explicit,
                          batch.offset_known), ("json", 0xA1, 1, 1, False, False))
        self.assertEqual(batch.records[1], wire.Record(1, 1500, 40.25))
        for bad in (b'{"v": 1, "incarnation": "a1", "first_seq": 1, "readings": [], "x": 1}',
                    b'{"v": 2, "incarnation": "a1", "first_seq": 1, "readings": [{"ch": 0, "t": 1, "v": 1}]}',
                    b'{"v": 1, "incarnation": "a1", "first_seq": 0, "readings": [{"ch": 0, "t": 1, "v": 1}]}',
                    b' [1]'):
            self.assertError("bad_json", wire.decode_json_batch, bad)
        self.assertError("truncated", wire.decode_up, b"[1]")  # not `{` first: read as binary


# --- The check functions, on hand-made observations ----------------------------------------

INC = 0x0123456789ABCDEF
BASE_WALL = 1_795_312_800_000  # the device's boot started at this wall time (mono 0)
CFG = fc.Config(device="dev-1", window=2, ack_timeout_s=1.0, keepalive_s=2.0, grace_s=0.5,
                clock_tolerance_ms=2000)


class Synth:
    """Observations of a well-behaved device, written by hand; tests then break one thing.
    Reading k is taken at mono k*10 ms; the checker's clock and the device's agree."""

    def __init__(self):
        self.obs = fc.Observations()
        self.seen = set()
        self.acked = 0          # the device's watermark (the last commit ack sent)
        self.first_ack = None

    def status(self, t, online, phase, source="live", inc=INC):
        seen = fc.StatusSeen(t, phase, source == "retained", source,
                             wire.Status(wire.ONLINE if online else wire.OFFLINE, inc, 0, "1.0"))
        if source == "live":
            self.obs.statuses.append(seen)
        return seen

    def send(self, t, first, last, phase, floor=None, **changes):
        known = self.first_ack is not None and t > self.first_ack
        batch = wire.Batch(INC, first, min(first, self.acked + 1) if floor is None else floor, 0,
                           BASE_WALL if known else 0, known,
                           tuple(wire.Record(0, seq * 10, float(seq)) for seq in range(first, last + 1)))
        batch = dataclasses.replace(batch, **changes)
        seqs = set(batch.seqs())
        up = fc.Up(t, BASE_WALL + round(t * 1000), phase, 1, 0, batch, None, bool(seqs & self.seen),
                   frozenset(seqs - self.seen))
        self.seen |= seqs
        self.obs.ups.append(up)
        return up

    def ack(self, t, watermark=None, kind="commit", inc=INC):
        if watermark is None:
            watermark = 0
            while watermark + 1 in self.seen:
                watermark += 1
        self.obs.acks.append(fc.AckSent(t, inc, watermark, kind))
        if not kind.startswith("bad:"):
            self.acked = max(self.acked, watermark)
            self.first_ack = self.first_ack or t


def good_session():
    s = Synth()
    obs = s.obs
    s.status(0.001, True, "birth")
    obs.phases["birth"] = {"start": 0.0, "retained": s.status(0.002, True, "birth", source="retained")}
    for i in range(150):  # acks flowing: 2 readings per batch, every 20 ms
        t = 0.025 + i * 0.02
        s.send(t, 2 * i + 1, 2 * i + 2, "steady")
        s.ack(t + 0.001)
        if i == 100:
            obs.telemetry.append(fc.TelemetrySeen(t + 0.002, "steady", wire.Telemetry(
                INC, 0, 0, round(t * 1000), 0, 0, 0, 2 * i + 3, s.acked)))
    obs.phases["steady"] = {"start": 0.0, "end": 3.01}

    s.send(3.025, 301, 302, "withhold")
    s.send(3.045, 303, 304, "withhold")
    s.send(4.05, 301, 304, "withhold")  # the resend after the ack timeout
    s.ack(4.06)
    s.send(4.07, 305, 336, "withhold")
    s.ack(4.071)
    obs.phases["withhold"] = {"start": 3.01, "stopped": 3.01, "watermark": 300, "resumed": 4.06,
                              "resume_max": 304, "watermark_after": 336, "max_after": 336}

    s.send(4.2, 337, 340, "stale")
    for watermark, kind, inc in ((336, "duplicate", INC), (336, "duplicate", INC), (340, "bad:other-incarnation", 7),
                                 (340, "bad:undecodable", INC), (335, "bad:older", INC), (0, "bad:zero", INC)):
        s.ack(4.21, watermark, kind, inc)
    s.send(5.3, 337, 340, "stale")  # resend from the only valid watermark
    s.ack(5.31)
    s.send(5.32, 341, 372, "stale")
    s.ack(5.321)
    obs.phases["stale"] = {"start": 4.1, "watermark": 336, "max_seen": 340, "bad_sent": 4.21, "resumed": 5.31,
                           "resume_max": 340, "watermark_after": 372, "max_after": 372}

    s.send(5.5, 373, 380, "reconnect")  # in flight when the broker dies
    obs.broker_kills.append(5.6)
    s.status(7.0, True, "reconnect")
    s.send(7.1, 373, 404, "reconnect")
    s.ack(7.101)
    obs.phases["reconnect"] = {"start": 5.4, "watermark": 372, "max_seen": 380, "killed": 5.6, "restarted": 6.8}

    s.status(8.01, False, "last_will")
    obs.phases["last_will"] = {"start": 7.9, "killed": 8.0,
                               "retained": s.status(8.02, False, "last_will", source="retained")}
    return s


def run_check(name, obs):
    """(passed, detail) of one check."""
    try:
        return True, fc.CHECK_FUNCTIONS[name](obs, CFG)
    except fc.Fail as e:
        return False, str(e)


def up_of(obs, first_seq, phase=None):
    return next(u for u in obs.ups if u.batch.first_seq == first_seq and (phase is None or u.phase == phase))


class CheckFunctions(unittest.TestCase):
    def assertFails(self, name, obs, *words):
        passed, detail = run_check(name, obs)
        self.assertFalse(passed, f"{name} passed: {detail}")
        for word in words:
            self.assertIn(word, detail)

    def test_a_good_session_passes_every_check(self):
        obs = good_session().obs
        for name, passed, detail in fc.evaluate(obs, CFG):
            self.assertTrue(passed, f"{name}: {detail}")

    def test_missing_phase_is_reported_not_run(self):
        obs = good_session().obs
        del obs.phases["stale"]
        obs.aborted = "the device exited with status 1 during phase stale"
        self.assertFails("stale_and_duplicate_acks", obs, "not run", "exited with status 1")

    def test_birth(self):
        obs = good_session().obs
        obs.phases["birth"]["retained"] = None
        self.assertFails("birth", obs, "retain")
        obs = good_session().obs
        obs.statuses[0].status, obs.statuses[0].error = None, "bad_checksum"
        self.assertFails("birth", obs, "did not decode", "bad_checksum")
        obs = good_session().obs
        obs.statuses.pop(0)
        obs.statuses = [s for s in obs.statuses if s.phase != "reconnect"]
        self.assertFails("birth", obs, "offline")

    def test_batches_decode(self):
        obs = good_session().obs
        obs.ups[5].qos = 0
        self.assertFails("batches_decode", obs, "QoS 0")
        obs = good_session().obs
        obs.ups[3].batch, obs.ups[3].error = None, "bad_checksum"
        self.assertFails("batches_decode", obs, "did not decode: bad_checksum")
        obs = good_session().obs
        obs.ups[7].batch = dataclasses.replace(obs.ups[7].batch, incarnation=5)
        self.assertFails("batches_decode", obs, "incarnation 0000000000000005")

    def test_contiguous(self):
        obs = good_session().obs
        obs.ups.remove(up_of(obs, 11))
        self.assertFails("contiguous", obs, "missing 11..12")
        obs = good_session().obs
        obs.ups.remove(up_of(obs, 1))
        self.assertTrue(run_check("contiguous", obs)[0])  # floor_seq 3: a backlog may start there
        second = up_of(obs, 3)
        second.batch = dataclasses.replace(second.batch, floor_seq=1)
        self.assertFails("contiguous", obs, "lowest was 3", "floor_seq 1")
        s = good_session()
        s.send(4.5, 337, 338, "stale", records=(wire.Record(0, 3370, 1.5), wire.Record(0, 3380, 338.0)))
        self.assertFails("contiguous", s.obs, "identical", "seq 337")

    def test_acked_not_resent(self):
        s = good_session()
        s.send(2.5, 10, 11, "steady", floor=10)
        self.assertFails("acked_not_resent", s.obs, "seqs 10..11 sent again")
        s = good_session()
        s.send(2.5, 299, 300, "steady", floor=299)  # within the grace of ack 300 (sent at 3.006)
        self.assertTrue(run_check("acked_not_resent", s.obs)[0])
        s = good_session()
        up_of(s.obs, 201).batch = dataclasses.replace(up_of(s.obs, 201).batch, floor_seq=1)
        self.assertFails("acked_not_resent", s.obs, "floor_seq 1", "expected >= 151")

    def test_window(self):
        s = good_session()
        s.obs.ups = [u for u in s.obs.ups if u.phase != "withhold"]
        s.seen -= set(range(301, 337))
        s.send(3.025, 301, 302, "withhold")
        s.send(3.045, 303, 304, "withhold")
        s.send(3.065, 305, 306, "withhold")
        self.assertFails("window", s.obs, "at most 2 batches", "saw 3")

    def test_resend(self):
        obs = good_session().obs
        obs.ups.remove(next(u for u in obs.ups if u.phase == "withhold" and u.repeat))
        self.assertFails("resend_after_withheld_ack", obs, "first_seq 301 again", "only new batches")
        obs = good_session().obs
        obs.phases["withhold"]["watermark_after"] = 302
        self.assertFails("resend_after_withheld_ack", obs, "watermark reached 302")

    def test_stale_ack_taken_as_real(self):
        obs = good_session().obs
        resend = next(u for u in obs.ups if u.phase == "stale" and u.repeat)
        resend.batch = dataclasses.replace(resend.batch, first_seq=1, floor_seq=1)
        self.assertFails("stale_and_duplicate_acks", obs, "no seq <= 336", "ack 0")

    def test_stale_foreign_ack_taken_as_real(self):
        obs = good_session().obs
        obs.ups.insert([u.mono for u in obs.ups].index(5.3), fc.Up(
            4.9, BASE_WALL + 4900, "stale", 1, 0, wire.Batch(INC, 341, 341, 0, BASE_WALL, True,
                                                             (wire.Record(0, 3410, 341.0),)), None, False,
            frozenset({341})))
        self.assertFails("stale_and_duplicate_acks", obs, "floor_seq <= 337", "got 341")

    def test_stale_resend_from_the_wrong_place(self):
        obs = good_session().obs
        resend = next(u for u in obs.ups if u.phase == "stale" and u.repeat)
        resend.batch = dataclasses.replace(resend.batch, first_seq=339, records=resend.batch.records[2:])
        self.assertFails("stale_and_duplicate_acks", obs, "start at 337", "started at 339")

    def test_stale_device_stops_working(self):
        obs = good_session().obs
        obs.phases["stale"].update(watermark_after=340, max_after=340)
        self.assertFails("stale_and_duplicate_acks", obs, "keep working")

    def test_reconnect(self):
        obs = good_session().obs
        obs.statuses = [s for s in obs.statuses if s.phase != "reconnect"]
        self.assertFails("reconnect_after_broker_restart", obs, "new online status")
        obs = good_session().obs
        last = obs.ups[-1]
        last.batch = dataclasses.replace(last.batch, first_seq=381, records=last.batch.records[8:])
        self.assertFails("reconnect_after_broker_restart", obs, "missing 373..380")

    def test_last_will(self):
        obs = good_session().obs
        obs.statuses = [s for s in obs.statuses if s.phase != "last_will"]
        self.assertFails("last_will", obs, "offline status", "saw none")
        obs = good_session().obs
        obs.phases["last_will"]["retained"] = None
        self.assertFails("last_will", obs, "retained", "got none")
        obs = good_session().obs
        obs.phases["last_will"]["retained"] = obs.phases["birth"]["retained"]
        self.assertFails("last_will", obs, "online birth")
        obs = good_session().obs
        will = obs.statuses[-1]
        will.status = dataclasses.replace(will.status, incarnation=9)
        self.assertFails("last_will", obs, "0000000000000009")

    def test_time_offset(self):
        obs = good_session().obs
        up = up_of(obs, 101)
        up.batch = dataclasses.replace(up.batch, offset_known=False, wall_offset_ms=0)
        self.assertFails("time_offset", obs, "flag bit 0", "first_seq 101")
        obs = good_session().obs
        up = up_of(obs, 101)
        up.batch = dataclasses.replace(up.batch, wall_offset_ms=BASE_WALL - 10_000)
        self.assertFails("time_offset", obs, "within 2000 ms", "seq 101")

    def test_telemetry(self):
        obs = good_session().obs
        obs.telemetry[0].telemetry = dataclasses.replace(obs.telemetry[0].telemetry, acked_through=340)
        self.assertFails("telemetry", obs, "acked_through 340", "bad ack")
        obs = good_session().obs
        obs.telemetry[0].telemetry, obs.telemetry[0].error = None, "truncated"
        self.assertFails("telemetry", obs, "did not decode")
        obs = good_session().obs
        obs.telemetry.clear()
        self.assertEqual(run_check("telemetry", obs), (True, "none published (optional)"))


# --- The checker against real processes -------------------------------------------------

def run_checker(device_command, *options, timeout=240):
    """Runs fieldlink-conformance; returns (exit status, output, {check: (passed, detail)})."""
    with tempfile.TemporaryDirectory(prefix="conformance-test-") as tmp:
        env = dict(os.environ, TMPDIR=tmp)  # a failing run keeps its logs; this folder takes them away
        proc = subprocess.run([sys.executable, str(CHECKER), *options, "--", *device_command],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout,
                              env=env, stdin=subprocess.DEVNULL)
    results = {}
    for line in proc.stdout.splitlines():
        m = re.match(r"(PASS|FAIL) (\w+): (.*)", line)
        if m:
            results[m.group(2)] = (m.group(1) == "PASS", m.group(3))
    return proc.returncode, proc.stdout, results


ALL_CHECKS = {name for name, _ in fc.CHECKS}


@unittest.skipUnless(READER and shutil.which("mosquitto"), "needs fieldlink-reader (FIELDLINK_READER) and mosquitto")
class AgainstReader(unittest.TestCase):
    def test_reader_passes_every_check(self):
        rc, out, results = run_checker(
            [READER, "--device", "{device}", "--broker", "{host}:{port}", "--window", "4", "--ack-timeout", "2000",
             "--keepalive", "2", "--period", "20", "--channels", "2"],
            "--device-id", "dut-1", "--window", "4", "--ack-timeout-ms", "2000", "--keepalive-s", "2")
        print(out)
        self.assertEqual(set(results), ALL_CHECKS, out)
        self.assertEqual([n for n, (ok, _) in results.items() if not ok], [], out)
        self.assertEqual(rc, 0, out)
        self.assertIn(f"{len(ALL_CHECKS)} passed, 0 failed", out)


@unittest.skipUnless(shutil.which("mosquitto"), "needs mosquitto")
class BrokenDevice(unittest.TestCase):
    def check_double(self, fault, expected_failures):
        rc, out, results = run_checker(
            [sys.executable, str(DOUBLE), "--device", "{device}", "--broker", "{host}:{port}", "--window", "4",
             "--ack-timeout", "1000", "--keepalive", "2", "--period", "20", "--channels", "2", "--fault", fault],
            "--device-id", f"double-{fault}", "--window", "4", "--ack-timeout-ms", "1000", "--keepalive-s", "2",
            "--reconnect-timeout-s", "8")
        print(out)
        self.assertEqual(set(results), ALL_CHECKS, out)
        failed = {name for name, (ok, _) in results.items() if not ok}
        self.assertEqual(failed, set(expected_failures), out)
        for name, words in expected_failures.items():
            for word in words:
                self.assertIn(word, results[name][1], out)
        self.assertEqual(rc, 1 if expected_failures else 0, out)

    def test_none(self):
        self.check_double("none", {})

    def test_trim_on_puback(self):
        self.check_double("trim-on-puback", {
            "resend_after_withheld_ack": ["again", "only new batches", "does not resend from its watermark"],
            "reconnect_after_broker_restart": ["to be sent again after the reconnect", "missing"]})

    def test_never_resend(self):
        self.check_double("never-resend", {
            "resend_after_withheld_ack": ["again", "only new batches"],
            "reconnect_after_broker_restart": ["to be sent again after the reconnect", "missing"]})

    def test_ignore_window(self):
        self.check_double("ignore-window", {"window": ["at most 4 batches beyond the acked watermark"]})


if __name__ == "__main__":
    unittest.main()
