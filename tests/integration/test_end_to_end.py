"""Three readers, one gateway, a real Mosquitto and a real SQLite file: every reading
the readers produced is stored exactly once with its value, and acks cover it all."""

import unittest

import harness as h

DEVICES = ["alpha", "bravo", "charlie"]


class EndToEnd(unittest.TestCase):
    def test_every_reading_lands_once(self):
        with h.workdir("e2e") as wd:
            broker = h.Mosquitto(wd).start()
            db = wd / "fieldlink.db"
            gateway = h.Gateway(wd, broker.port, db).start()
            readers = [
                h.Reader(wd, d, broker.port, ["--channels", "3", "--period", "40", "--batch-size", "16",
                                              "--window", "4", "--duration", "6", "--drain-timeout", "30"]).start()
                for d in DEVICES
            ]
            try:
                for r in readers:
                    code = r.wait(timeout=60)
                    self.assertEqual(code, 0, f"{r.name} did not drain:\n{r.log()[-3000:]}")
            finally:
                for r in readers:
                    r.stop()
                gateway_code = gateway.stop()
                broker.stop()
            self.assertEqual(gateway_code, 0, gateway.log()[-3000:])

            produced = h.read_produced([r.record_file for r in readers])
            stored, row_count = h.read_stored(db)
            per_device = {d: sum(1 for k in produced if k[0] == d) for d in DEVICES}
            for d, n in per_device.items():
                self.assertGreater(n, 100, f"{d} produced too little to mean anything")

            missing = produced.keys() - stored.keys()
            extra = stored.keys() - produced.keys()
            self.assertFalse(missing, f"{len(missing)} readings lost, e.g. {sorted(missing)[:5]}")
            self.assertFalse(extra, f"{len(extra)} readings nobody produced, e.g. {sorted(extra)[:5]}")
            self.assertEqual(row_count, len(produced), "duplicate rows")
            for key, value in produced.items():
                self.assertEqual(stored[key], value, f"reading {key} stored with other fields")

            # The devices were told: each reader's final ack covers everything it produced,
            # and the gateway's persisted watermark agrees.
            for r in readers:
                summary = r.summary()
                self.assertIsNotNone(summary, f"{r.name} printed no summary")
                produced_n = int(summary["produced"])
                self.assertEqual(produced_n, per_device[r.device])
                self.assertEqual(int(summary["acked_through"]), produced_n, summary)
                incarnation = int(summary["incarnation"], 16)
                (watermark,), = h.query(db, "SELECT watermark FROM watermarks WHERE device = ? AND incarnation = ?",
                                        r.device, incarnation - (1 << 64) if incarnation >= 1 << 63 else incarnation)
                self.assertEqual(watermark, produced_n)


if __name__ == "__main__":
    unittest.main()
