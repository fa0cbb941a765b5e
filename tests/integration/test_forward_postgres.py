"""Store-and-forward into a real PostgreSQL: readers -> local Mosquitto -> gateway -> SQLite ->
forwarder -> fieldlink_readings. The central table holds exactly the gateway's set: none lost,
none doubled (the primary key; also row count == distinct keys), every field equal."""

import unittest

import forward_harness as f
import harness as h
import pg_harness


@unittest.skipIf(f.pg_skip_reason(), f.pg_skip_reason())
class ForwardPostgres(unittest.TestCase):
    def test_exactly_once_into_postgres(self):
        with h.workdir("fwd-pg") as wd:
            server = pg_harness.PostgresServer(wd).start()
            broker = h.Mosquitto(wd).start()
            db = wd / "fieldlink.db"
            gateway = f.ForwardGateway(wd, broker.port, db,
                                       [f.postgres_upstream("central", server, batch_rows=200)]).start()
            readers = [h.Reader(wd, f"pg{i}", broker.port, f.LOAD + ["--duration", "6"]).start() for i in range(3)]
            try:
                local = f.settle_chain(self, readers, gateway, db, ["central"])
                self.assertEqual(gateway.stop(), 0, gateway.log()[-3000:])
                rows = f.assert_postgres_forwarded(self, local, server)
            finally:
                f.stop_all(readers, gateway, broker, server)
            self.assertGreater(rows, 3 * 3 * 50 * 5)
            cur = f.cursor(db, "central")
            self.assertEqual(cur["forwarded_rows"], rows, f"without faults each row is sent once: {cur}")


if __name__ == "__main__":
    unittest.main()
