"""Backlog and fresh data first. The upstream broker is down while readers fill the gateway's
SQLite with at least 200,000 readings and stop; then it comes back (fresh_first_rows small) and a
new device starts sampling. Everything arrives, and readings stored after the forwarder came back
arrive before the backlog has fully drained: the first of them reaches the receiver before the
last backlog reading does (order of arrival at the receiver), and the durable cursor carried a
live lane (forward_cursors.live_from_id, read from SQLite during the run).

The forwarder reconnects with a doubling backoff (0.5 s up to 30 s), so it may find the upstream
back only some seconds after it came; the readings the new device produced meanwhile belong to
the backlog lane (the split is made at the reconnect)."""

import signal
import time
import unittest

import forward_harness as f
import harness as h

BACKLOG = 200_000
READER = ["--channels", "16", "--period", "1", "--batch-size", "512", "--window", "8",
          "--buffer", "2000000", "--ack-timeout", "5000", "--drain-timeout", "300"]


FRESH = ["--channels", "16", "--period", "5", "--batch-size", "256", "--window", "8",
         "--ack-timeout", "5000", "--drain-timeout", "120"]


class FreshFirst(unittest.TestCase):
    def test_backlog_of_200k_and_fresh_data_first(self):
        with h.workdir("fwd-backlog") as wd:
            broker = h.Mosquitto(wd).start()
            upstream = f.UpstreamBroker(wd).start()
            port = upstream.port
            receiver = f.Receiver(wd, port).start()
            upstream.stop()  # down, with the receiver's persistent session saved
            db = wd / "fieldlink.db"
            upstreams = [f.mqtt_upstream("central", port, batch_rows=1000, window=4, fresh_first_rows=5000,
                                       batch_delay_ms=50)]
            gateway = f.ForwardGateway(wd, broker.port, db, upstreams).start()
            readers = [h.Reader(wd, f"bl{i}", broker.port, READER).start() for i in range(2)]
            live_cursors = []
            try:
                started = time.monotonic()
                h.wait_for(lambda: f.stored_count(db) >= BACKLOG or not all(r.running() for r in readers), 240,
                           f"a backlog of {BACKLOG} stored readings", interval=0.25)
                for r in readers:
                    self.assertTrue(r.running(), r.log()[-3000:])
                    r.signal(signal.SIGTERM)  # stop sampling; what they hold goes to the gateway
                f.drain_readers(self, readers)
                backlog_s = time.monotonic() - started
                self.assertEqual(f.cursor(db, "central")["next_id"], 1, "nothing forwarded while the upstream was down")
                backlog_rows = f.stored_count(db)
                f.log(f"backlog: {backlog_rows} readings stored in {backlog_s:.1f} s with the upstream down")

                up_unix_ms = int(time.time() * 1000)
                upstream = f.UpstreamBroker(wd, port=port).start()
                up_at = time.monotonic()
                # From now on a new device samples: everything it produces is fresh data.
                fresh_reader = h.Reader(wd, "fresh", broker.port, FRESH).start()
                readers.append(fresh_reader)

                def watch(until):
                    """Polls the durable cursor, keeping every snapshot that has a live lane."""
                    c = f.cursor(db, "central")
                    if c and c["live_from_id"] is not None:
                        live_cursors.append(c)
                    return until(c)
                h.wait_for(lambda: watch(lambda c: bool(live_cursors)), 120,
                           "the forwarder to split off a live lane (live_from_id)", interval=0.02)
                connected_s = time.monotonic() - up_at
                h.wait_for(lambda: watch(lambda c: c["live_from_id"] is None), 240,
                           "the backlog lane to merge into the live lane", interval=0.05)
                merged_s = time.monotonic() - up_at
                fresh_reader.signal(signal.SIGTERM)
                local = f.settle_chain(self, readers, gateway, db, ["central"], timeout=300)
                got = f.wait_received(receiver, local.readings.keys(), timeout=120)
                self.assertEqual(gateway.stop(), 0, gateway.log()[-3000:])
            finally:
                f.stop_all(readers, gateway, receiver, upstream, broker)

            f.assert_mqtt_forwarded(self, local, got)
            live_from = live_cursors[0]["live_from_id"]
            self.assertTrue(all(c["live_from_id"] == live_from for c in live_cursors), live_cursors[:3])
            self.assertGreater(live_from, backlog_rows, "the live lane starts after the backlog")
            key_of = local.key_of_id()
            fresh = [k for i, k in key_of.items() if i >= live_from]
            backlog = [k for i, k in key_of.items() if i < live_from]
            self.assertTrue(fresh, "readings were stored after the forwarder came back")
            self.assertTrue(all(k[1] == "fresh" for k in fresh), "only the new device sampled after the outage")
            first_fresh = min(got.first_arrival[k] for k in fresh)
            last_backlog = max(got.first_arrival[k] for k in backlog)
            when = {index: t for index, t, _, _ in got.messages}
            before = sum(1 for k in backlog if got.first_arrival[k] < first_fresh)
            f.log(f"upstream back {connected_s:.1f} s before the forwarder split off a live lane from id {live_from} "
                  f"(its reconnect backoff); {len(backlog)} backlog and {len(fresh)} fresh readings; the first fresh "
                  f"reading arrived in message {first_fresh}, {when[first_fresh] - up_unix_ms / 1000:.2f} s after "
                  f"the upstream came back, when {before} of {len(backlog)} backlog readings had arrived; the last "
                  f"backlog reading arrived in message {last_backlog}, {when[last_backlog] - up_unix_ms / 1000:.2f} s "
                  f"after; lanes merged {merged_s:.1f} s after; cursor snapshots with a live lane: {len(live_cursors)}")
            self.assertLess(first_fresh, last_backlog, "fresh readings arrived only after the whole backlog")
            self.assertIn("go first", gateway.log())


if __name__ == "__main__":
    unittest.main()
