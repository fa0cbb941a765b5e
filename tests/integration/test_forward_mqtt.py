"""Store-and-forward to an MQTT upstream: readers -> local Mosquitto -> gateway -> SQLite ->
forwarder -> a second Mosquitto -> a QoS 1 receiver. At the end the set of readings that
arrived upstream equals the set in the gateway's SQLite, key and every field, none lost."""

import shutil
import unittest

import forward_harness as f
import harness as h


class DecoderMatchesTheDocument(unittest.TestCase):
    """The tests' decoder, written from docs/protocol.md section 10, reads its vector."""

    def test_forward_batch_vector(self):
        gateway, device, records, form = f.decode_payload(f.document_vector("forward-batch"))
        self.assertEqual((gateway, device, form), ("gw-1", "plant-7", "binary"))
        self.assertEqual(records, [
            (0x0123456789ABCDEF, 1, 0, 0, 1500, 1795312800456, 21.5, 1795312800500),
            (0x0123456789ABCDEF, 2, 0, 1, 1500, None, 40.25, 1795312800500),
        ])

    def test_corrupt_vector_is_refused(self):
        vector = bytearray(f.document_vector("forward-batch"))
        vector[30] ^= 1
        with self.assertRaises(f.DecodeError):
            f.decode_payload(bytes(vector))


class ForwardMqtt(unittest.TestCase):
    def run_chain(self, prefix, encoding="binary", zstd_level=0, devices=3, seconds=6, **upstream_keys):
        with h.workdir(prefix) as wd:
            broker = h.Mosquitto(wd).start()
            upstream = f.UpstreamBroker(wd).start()
            receiver = f.Receiver(wd, upstream.port).start()
            db = wd / "fieldlink.db"
            keys = {"encoding": encoding, "batch_rows": 200, "window": 4, **upstream_keys}
            if zstd_level:
                keys["zstd_level"] = zstd_level
            gateway = f.ForwardGateway(wd, broker.port, db, [f.mqtt_upstream("central", upstream.port, **keys)]).start()
            readers = [h.Reader(wd, f"{prefix}{i}", broker.port, f.LOAD + ["--duration", str(seconds)]).start()
                       for i in range(devices)]
            try:
                local = f.settle_chain(self, readers, gateway, db, ["central"])
                got = f.wait_received(receiver, local.readings.keys())
                self.assertEqual(gateway.stop(), 0, gateway.log()[-3000:])
            finally:
                f.stop_all(readers, gateway, receiver, upstream, broker)
            self.assertGreater(len(local.readings), devices * 3 * 50 * (seconds - 1))
            f.assert_mqtt_forwarded(self, local, got)
            self.assertEqual(got.duplicates, 0, "duplicates without any fault")
            self.assertIn("connected lag=", gateway.log(), "the stats line names the upstream")
            return got

    def test_binary(self):
        got = self.run_chain("fwd-bin")
        self.assertEqual(got.forms, {"binary"})

    def test_binary_over_mqtt_5(self):
        got = self.run_chain("fwd-v5", mqtt_version="5")
        self.assertEqual(got.forms, {"binary"})

    def test_json(self):
        got = self.run_chain("fwd-json", encoding="json")
        self.assertEqual(got.forms, {"json"})

    @unittest.skipUnless(shutil.which("zstd"), "the zstd command-line tool (Debian package zstd) is missing")
    def test_json_in_zstd_frames(self):
        got = self.run_chain("fwd-zstd", encoding="json", zstd_level=3)
        self.assertEqual(got.forms, {"zstd+json"})


if __name__ == "__main__":
    unittest.main()
