"""Fault tests with real processes: each ends by comparing the exact set of readings the
readers produced with the set in SQLite (zero lost, zero duplicated)."""

import signal
import time
import unittest

import harness as h
import netproxy

LOAD = ["--channels", "3", "--period", "20", "--batch-size", "32", "--window", "4",
        "--ack-timeout", "2000", "--drain-timeout", "120"]


def drain_all(test, readers, timeout=180):
    for r in readers:
        code = r.wait(timeout=timeout)
        test.assertEqual(code, 0, f"{r.name} did not drain (exit {code}):\n{r.log()[-3000:]}")


class Faults(unittest.TestCase):
    def test_gateway_killed_repeatedly_under_load(self):
        with h.workdir("fault-gateway") as wd:
            broker = h.Mosquitto(wd).start()
            db = wd / "fieldlink.db"
            gateway = h.Gateway(wd, broker.port, db).start()
            readers = [h.Reader(wd, f"gk{i}", broker.port, LOAD + ["--duration", "20"]).start() for i in range(3)]
            try:
                for _ in range(5):
                    time.sleep(3)
                    gateway.kill()  # SIGKILL: no flush, no goodbye
                    time.sleep(0.5)
                    gateway = h.Gateway(wd, broker.port, db).start()
                drain_all(self, readers)
            finally:
                for r in readers:
                    r.stop()
                gateway.stop()
                broker.stop()
            produced = h.assert_exactly_once(self, readers, db)
            self.assertGreater(len(produced), 3 * 3 * 20 * 20)

    def test_broker_killed_and_restarted_under_load(self):
        with h.workdir("fault-broker") as wd:
            broker = h.Mosquitto(wd).start()
            port = broker.port
            db = wd / "fieldlink.db"
            gateway = h.Gateway(wd, port, db).start()
            readers = [h.Reader(wd, f"bk{i}", port, LOAD + ["--duration", "16"]).start() for i in range(3)]
            try:
                for _ in range(2):
                    time.sleep(4)
                    broker.kill()
                    time.sleep(1)
                    broker = h.Mosquitto(wd, port=port).start()
                drain_all(self, readers)
            finally:
                for r in readers:
                    r.stop()
                gateway.stop()
                broker.stop()
            h.assert_exactly_once(self, readers, db)

    def test_network_partitioned_and_healed(self):
        with h.workdir("fault-partition") as wd:
            broker = h.Mosquitto(wd).start()
            db = wd / "fieldlink.db"
            gateway = h.Gateway(wd, broker.port, db).start()
            with netproxy.Proxy(broker.port) as proxy:
                readers = [h.Reader(wd, f"np{i}", proxy.port, LOAD + ["--duration", "22", "--keepalive", "2"]).start()
                           for i in range(3)]
                try:
                    for mode, seconds in [(netproxy.PASS, 3), (netproxy.DROP, 3), (netproxy.PASS, 3),
                                          (netproxy.STALL, 5), (netproxy.PASS, 3)]:
                        proxy.set_mode(mode)
                        time.sleep(seconds)
                    proxy.reset_all()
                    time.sleep(2)
                    proxy.reset_all()
                    drain_all(self, readers)
                finally:
                    for r in readers:
                        r.stop()
                    gateway.stop()
                    broker.stop()
                self.assertGreater(proxy.connections_seen, 3, "readers never reconnected")
            h.assert_exactly_once(self, readers, db)
            for r in readers:
                self.assertGreater(int(r.summary()["reconnects"]), 0, r.summary())

    def test_reader_killed_and_restarted_on_same_flash(self):
        with h.workdir("fault-reader") as wd:
            broker = h.Mosquitto(wd).start()
            db = wd / "fieldlink.db"
            gateway = h.Gateway(wd, broker.port, db).start()
            flash = wd / "rk.flash"
            args = LOAD + ["--flash", flash, "--flash-sectors", "256"]
            reader = h.Reader(wd, "rk", broker.port, args).start()
            unrecorded = set()
            try:
                for _ in range(4):
                    time.sleep(3)
                    reader.kill()  # SIGKILL: the spool must keep what the gateway has not committed
                    produced = h.read_produced([reader.record_file])
                    incarnation = {k[1] for k in produced}
                    self.assertEqual(len(incarnation), 1, "the flash kept one incarnation across restarts")
                    last = max(k[2] for k in produced)
                    # Killed between the durable append and its record line: stored, never recorded.
                    unrecorded.add(("rk", incarnation.pop(), last + 1))
                    reader = h.Reader(wd, "rk", broker.port, args).start()
                # The log is shared by all five runs: wait until the last one is up before stopping it.
                h.wait_for(lambda: reader.log().count("subscribed to commit acks") >= 5, 30, "the last reader to connect")
                time.sleep(1)
                reader.signal(signal.SIGTERM)
                drain_all(self, [reader])
            finally:
                reader.stop()
                gateway.stop()
                broker.stop()
            produced = h.assert_exactly_once(self, [reader], db, may_be_unrecorded=unrecorded)
            boots = {v[0] for v in produced.values()}
            self.assertGreaterEqual(len(boots), 5, f"each restart is a new boot: {sorted(boots)}")
            summary = reader.summary()
            self.assertEqual(int(summary["acked_through"]), max(k[2] for k in produced), summary)


if __name__ == "__main__":
    unittest.main()
