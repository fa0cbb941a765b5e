"""An outage long enough for one device to build a backlog of over 100,000 readings,
then the drain: all of it lands in SQLite exactly once."""

import signal
import unittest

import harness as h
import netproxy

BACKLOG = 100_000


class Backlog(unittest.TestCase):
    def test_backlog_of_100k_drains_exactly_once(self):
        with h.workdir("fault-backlog") as wd:
            broker = h.Mosquitto(wd).start()
            db = wd / "fieldlink.db"
            gateway = h.Gateway(wd, broker.port, db).start()
            with netproxy.Proxy(broker.port) as proxy:
                proxy.set_mode(netproxy.DROP)
                reader = h.Reader(wd, "backlog", proxy.port,
                                  ["--channels", "8", "--period", "1", "--batch-size", "256", "--window", "8",
                                   "--buffer", "400000", "--drain-timeout", "300"]).start()
                try:
                    h.wait_for(lambda: h.record_count(reader) >= BACKLOG or not reader.running(), 300,
                               f"a backlog of {BACKLOG} readings", interval=0.5)
                    self.assertTrue(reader.running(), reader.log()[-3000:])
                    stored_before, _ = h.read_stored(db)
                    self.assertEqual(len(stored_before), 0, "readings crossed a dropped link")
                    proxy.set_mode(netproxy.PASS)
                    reader.signal(signal.SIGTERM)  # stop sampling, drain, exit
                    self.assertEqual(reader.wait(timeout=400), 0, reader.log()[-3000:])
                finally:
                    reader.stop()
                    gateway.stop()
                    broker.stop()
            produced = h.assert_exactly_once(self, [reader], db)
            self.assertGreaterEqual(len(produced), BACKLOG)


if __name__ == "__main__":
    unittest.main()
