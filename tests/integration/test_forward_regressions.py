"""Regression tests of forwarder bugs found by the store-and-forward tests: a batch larger
than the upstream broker's packet limit (now split by max_message_bytes), and the lag in the
stats line while the upstream is down (now kept current)."""

import re
import unittest

import forward_harness as f
import harness as h


class Regressions(unittest.TestCase):
    def test_json_chunk_larger_than_the_brokers_packet_limit_is_forwarded(self):
        """An upstream Mosquitto from the shipped config (max_packet_size 131072) and JSON
        encoding with the default batch_rows = 1000: one device's 1000 readings make a JSON
        message of about 150 KB. Mosquitto drops the connection ("disconnected due to
        oversize packet"), the forwarder reconnects and sends the same chunk again, forever;
        its cursor never leaves id 1 and its log only says "not connected"."""
        with h.workdir("fwd-bug-size") as wd:
            broker = h.Mosquitto(wd).start()
            upstream = f.UpstreamBroker(wd, shipped_config=True).start()
            receiver = f.Receiver(wd, upstream.port).start()
            db = wd / "fieldlink.db"
            gateway = f.ForwardGateway(wd, broker.port, db, [f.mqtt_upstream("central", upstream.port,
                                                                               encoding="json")]).start()
            reader = h.Reader(wd, "big", broker.port, ["--channels", "16", "--period", "5", "--batch-size", "256",
                                                       "--duration", "2", "--drain-timeout", "60"]).start()
            try:
                f.drain_readers(self, [reader])
                try:
                    f.wait_forwarded(db, ["central"], gateway, timeout=10)
                finally:
                    f.log(f"cursor {f.cursor(db, 'central')}; upstream broker says: "
                          f"{upstream.log().count('oversize packet')} x 'disconnected due to oversize packet'")
                local = f.read_local(db)
                got = f.wait_received(receiver, local.readings.keys(), timeout=10)
            finally:
                f.stop_all(reader, gateway, receiver, upstream, broker)
            f.assert_mqtt_forwarded(self, local, got)

    def test_stats_lag_counts_the_readings_waiting_while_disconnected(self):
        """The upstream is absent while readings are stored: the stats line keeps saying
        "upstream central: disconnected lag=0" however many readings wait (the lag is
        computed only when the cursor is saved, and last_row_id only while connected)."""
        with h.workdir("fwd-bug-lag") as wd:
            broker = h.Mosquitto(wd).start()
            db = wd / "fieldlink.db"
            gateway = f.ForwardGateway(wd, broker.port, db, [f.mqtt_upstream("central", h.free_port())]).start()
            reader = h.Reader(wd, "lag", broker.port, f.LOAD + ["--duration", "3"]).start()
            try:
                f.drain_readers(self, [reader])
                stored = f.stored_count(db)
                lines = len(f.upstream_lines(gateway, "central"))
                h.wait_for(lambda: len(f.upstream_lines(gateway, "central")) >= lines + 2, 10, "two more stats lines")
                line = f.upstream_lines(gateway, "central")[-1]
            finally:
                f.stop_all(reader, gateway, broker)
            lag = int(re.search(r" lag=(\d+)", line).group(1))
            f.log(f"{stored} readings stored, none forwarded; the stats line says: {line.strip()}")
            self.assertEqual(lag, stored, line)


if __name__ == "__main__":
    unittest.main()
