"""Retention with the real gateway and a real upstream: each limit decides what leaves, and what
leaves is accounted for. Rows are seeded straight into the gateway's SQLite file (a backlog from a
device no reader plays) while the link to the upstream broker is down (a proxy that drops every
connection; the broker and its subscriber run throughout), so the test knows every key.

- max_db_bytes with the upstream down: readings not yet forwarded must go, oldest first; every one
  is named in the log, counted in retention_drops and in the pass summaries; once the upstream is
  up, every reading that was kept arrives there (exact set).
- max_age_s: old readings wait while the upstream is down (age never deletes what an upstream
  still waits for), and leave only after the upstream confirmed them; nothing is dropped.
The free-disk floor is tested on a real small filesystem by fault.disk_full."""

import contextlib
import time
import unittest

import forward_harness as f
import harness as h
import netproxy
from test_disk_full import PASS_SUMMARY, deleted_keys, seed

SEED_ROWS = 60_000     # about 4 MiB with the index
MAX_DB_BYTES = 2 << 20


def retention_gateway(wd, broker, db, upstream_port, retention):
    keys = {"interval_s": 1, "delete_batch_rows": 1000, **retention}
    return f.ForwardGateway(wd, broker.port, db, [f.mqtt_upstream("central", upstream_port)],
                            sections={"retention": keys, "log": {"level": "debug"}}).start()


def wait_started(test, gateway, db):
    h.wait_for(lambda: "fieldlink-gateway running" in gateway.log() or not gateway.running(), 30, "the gateway")
    test.assertTrue(gateway.running(), gateway.log()[-3000:])
    h.wait_for(lambda: "retention: every" in gateway.log(), 10, "retention to start")
    h.wait_for(lambda: f.cursor(db, "central") is not None, 10, "the forwarder's cursor")


def summaries(log):
    """(by age, forwarded for size, not yet forwarded) summed over every pass summary."""
    found = PASS_SUMMARY.findall(log)
    return tuple(sum(int(x[i]) for x in found) for i in range(3))


class Retention(unittest.TestCase):
    def test_size_limit_drops_unforwarded_readings_counts_each_and_the_rest_arrives(self):
        with h.workdir("retention-size") as wd, contextlib.ExitStack() as stack:
            broker = h.Mosquitto(wd).start()
            upstream = f.UpstreamBroker(wd).start()
            receiver = f.Receiver(wd, upstream.port).start()
            link = stack.enter_context(netproxy.Proxy(upstream.port))
            link.set_mode(netproxy.DROP)
            db = wd / "fieldlink.db"
            gateway = retention_gateway(wd, broker, db, link.port, {"max_db_bytes": MAX_DB_BYTES})
            try:
                wait_started(self, gateway, db)
                seeded = seed(db, SEED_ROWS, int(time.time() * 1000))
                h.wait_for(lambda: "(counted in retention_drops)" in gateway.log(), 30,
                           "retention to drop readings not yet forwarded")
                # Under the limit again: a pass that deletes nothing.
                done = gateway.log().count("retention: pass done, nothing to delete")
                h.wait_for(lambda: gateway.log().count("retention: pass done, nothing to delete") > done, 30,
                           "a pass with nothing left to delete")
                kept = f.stored_count(db)
                self.assertGreater(kept, 0)
                self.assertLess(kept, SEED_ROWS)

                link.set_mode(netproxy.PASS)
                f.wait_forwarded(db, ["central"], gateway, timeout=60)
                local = f.read_local(db)
                got = f.wait_received(receiver, local.readings.keys())
                self.assertEqual(gateway.stop(), 0, gateway.log()[-3000:])
            finally:
                f.stop_all(gateway, receiver, upstream, broker)

            log = gateway.log()
            deleted = deleted_keys(log, self)
            stored, _ = h.read_stored(db)
            self.assertFalse(stored.keys() & deleted, "a deleted key is still stored")
            self.assertEqual(stored.keys() | deleted, seeded.keys(), "every seeded reading is kept or deleted")
            self.assertEqual(sorted(s for _, _, s in deleted), list(range(1, len(deleted) + 1)), "oldest first")
            self.assertEqual(summaries(log), (0, 0, len(deleted)), "every deleted reading was a counted drop")
            drops = h.query(db, "SELECT upstream, device, reason, rows, first_id, last_id FROM retention_drops")
            self.assertEqual(drops, [("central", "seed", "max_db_bytes", len(deleted), 1, len(deleted))])
            self.assertLessEqual(h.query(db, "PRAGMA page_count")[0][0] * h.query(db, "PRAGMA page_size")[0][0],
                                 MAX_DB_BYTES + (1 << 20), "the file shrank to about the limit")
            # Nothing kept is lost: the upstream got exactly what the gateway still has.
            f.assert_mqtt_forwarded(self, local, got)
            print(f"seeded {SEED_ROWS}, dropped {len(deleted)} unforwarded (counted), kept and forwarded "
                  f"{len(local.readings)}", flush=True)

    def test_age_waits_for_the_upstream_then_deletes_what_it_confirmed(self):
        with h.workdir("retention-age") as wd, contextlib.ExitStack() as stack:
            broker = h.Mosquitto(wd).start()
            upstream = f.UpstreamBroker(wd).start()
            receiver = f.Receiver(wd, upstream.port).start()
            link = stack.enter_context(netproxy.Proxy(upstream.port))
            link.set_mode(netproxy.DROP)
            db = wd / "fieldlink.db"
            gateway = retention_gateway(wd, broker, db, link.port, {"max_age_s": 60})
            try:
                wait_started(self, gateway, db)
                an_hour_ago = int(time.time() * 1000) - 3_600_000
                seeded = seed(db, 20_000, an_hour_ago)
                passes = gateway.log().count("retention: pass done")
                h.wait_for(lambda: gateway.log().count("retention: pass done") >= passes + 3, 30,
                           "three retention passes")
                self.assertEqual(f.stored_count(db), len(seeded), "age deleted readings the upstream waits for")

                link.set_mode(netproxy.PASS)
                f.wait_forwarded(db, ["central"], gateway, timeout=60)
                got = f.wait_received(receiver, {(f.GATEWAY_ID, *k) for k in seeded}, timeout=60)
                h.wait_for(lambda: f.stored_count(db) == 0, 30, "retention to delete the forwarded old readings")
                self.assertEqual(gateway.stop(), 0, gateway.log()[-3000:])
            finally:
                f.stop_all(gateway, receiver, upstream, broker)

            log = gateway.log()
            deleted = deleted_keys(log, self)
            self.assertEqual(deleted, set(seeded.keys()))
            self.assertEqual(summaries(log), (len(seeded), 0, 0), "deleted by age, none dropped")
            self.assertEqual(h.query(db, "SELECT count(*) FROM retention_drops")[0][0], 0)
            arrived = {k[1:] for k in got.readings}
            self.assertEqual(arrived, set(seeded.keys()), "every old reading arrived before it was deleted")
            self.assertFalse(got.problems, got.problems[:3])


if __name__ == "__main__":
    unittest.main()
