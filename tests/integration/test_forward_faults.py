"""Store-and-forward under faults, with real processes: the gateway SIGKILLed while it forwards,
the upstream broker SIGKILLed and restarted, PostgreSQL's postmaster SIGKILLed in the middle of
a chunk's transaction, and the link to the upstreams partitioned, stalled and reset. Every
scenario ends the same way: the readers drain (each reading acked by the gateway), SQLite holds
exactly what they recorded, the forward cursors reach the last row, and each upstream holds
exactly the gateway's set (PostgreSQL: zero duplicates; MQTT: duplicates only for what was in
flight at a break, counted)."""

import signal
import subprocess
import time
import unittest

import forward_harness as f
import harness as h
import netproxy
import pg_harness

PG_MISSING = f.pg_skip_reason()
BATCH_ROWS = 200
WINDOW = 4


@unittest.skipIf(PG_MISSING, PG_MISSING)
class GatewayKilled(unittest.TestCase):
    def test_gateway_killed_repeatedly_while_forwarding(self):
        """Five SIGKILLs of the gateway while it forwards to an MQTT broker and to PostgreSQL,
        each at a moment when an answer (PUBACK, a statement's reply) is on its way back to it:
        the links to the upstreams have 50 ms of latency each way (f.DelayProxy)."""
        with h.workdir("fwd-gwkill") as wd:
            server = pg_harness.PostgresServer(wd).start()
            broker = h.Mosquitto(wd).start()
            upstream = f.UpstreamBroker(wd).start()
            receiver = f.Receiver(wd, upstream.port).start()
            db = wd / "fieldlink.db"
            with f.DelayProxy(upstream.port, delay=0.05) as mq_link, f.DelayProxy(server.port, delay=0.05) as pg_link:
                upstreams = [f.mqtt_upstream("mq", mq_link.port, batch_rows=BATCH_ROWS, window=WINDOW),
                             f.postgres_upstream("pg", server, port=pg_link.port, batch_rows=BATCH_ROWS)]
                gateway = f.ForwardGateway(wd, broker.port, db, upstreams).start()
                readers = [h.Reader(wd, f"gk{i}", broker.port, f.LOAD + ["--duration", "18"]).start()
                           for i in range(3)]
                at_kills = []
                try:
                    for i in range(5):
                        time.sleep(2.5)
                        link = (mq_link, pg_link)[i % 2]
                        h.wait_for(lambda: link.pending_to_client() > 0, 20,
                                   f"an answer on its way to the gateway ({('mq', 'pg')[i % 2]})", interval=0.002)
                        f.kill(gateway)  # SIGKILL: what was in flight stays unconfirmed
                        at_kills.append({u: f.cursor(db, u) for u in ("mq", "pg")})
                        time.sleep(0.3)
                        gateway = f.ForwardGateway(wd, broker.port, db, upstreams).start()
                    local = f.settle_chain(self, readers, gateway, db, ["mq", "pg"])
                    got = f.wait_received(receiver, local.readings.keys())
                    self.assertEqual(gateway.stop(), 0, gateway.log()[-3000:])
                    f.assert_postgres_forwarded(self, local, server)
                finally:
                    f.stop_all(readers, gateway, receiver, upstream, broker, server)
            f.assert_mqtt_forwarded(self, local, got)
            moved = [c["mq"]["next_id"] for c in at_kills if c["mq"]]
            self.assertGreater(len(set(moved)), 2, f"the gateway was killed while forwarding: cursors {moved}")
            spans = [s for c in at_kills if c["mq"] for s in f.in_flight_spans(local, c["mq"], WINDOW, BATCH_ROWS)]
            f.assert_duplicates_in_flight(self, local, got, spans)
            self.assertEqual(gateway.log().count("forwarding to 2 upstream(s)"), 6)


class UpstreamBrokerKilled(unittest.TestCase):
    def test_upstream_broker_killed_and_restarted_mid_stream(self):
        """The upstream broker SIGKILLed twice while a PUBACK is on its way to the gateway (50 ms
        of latency on the gateway's link, f.DelayProxy), restarted on the same port and folder."""
        with h.workdir("fwd-upkill") as wd:
            broker = h.Mosquitto(wd).start()
            upstream = f.UpstreamBroker(wd).start()
            port = upstream.port
            receiver = f.Receiver(wd, port).start()
            db = wd / "fieldlink.db"
            with f.DelayProxy(port, delay=0.05) as link:
                upstreams = [f.mqtt_upstream("mq", link.port, batch_rows=BATCH_ROWS, window=WINDOW)]
                gateway = f.ForwardGateway(wd, broker.port, db, upstreams).start()
                readers = [h.Reader(wd, f"uk{i}", broker.port, f.LOAD + ["--duration", "14"]).start()
                           for i in range(3)]
                try:
                    for round_ in range(2):
                        time.sleep(3)
                        self.assertGreater(len(receiver.read().readings), 0, "forwarding before the kill")
                        h.wait_for(lambda: link.pending_to_client() > 0, 20, "a PUBACK on its way to the gateway",
                                   interval=0.002)
                        f.kill(upstream)  # SIGKILL of the upstream broker mid-stream
                        time.sleep(1)
                        upstream = f.UpstreamBroker(wd, port=port).start()
                        receiver.wait_subscribed(round_ + 2)
                    local = f.settle_chain(self, readers, gateway, db, ["mq"])
                    got = f.wait_received(receiver, local.readings.keys())
                    self.assertEqual(gateway.stop(), 0, gateway.log()[-3000:])
                finally:
                    f.stop_all(readers, gateway, receiver, upstream, broker)
            f.assert_mqtt_forwarded(self, local, got)
            log = gateway.log()
            self.assertGreaterEqual(log.count("upstream mq: a chunk was not confirmed"), 2, log[-4000:])
            self.assertGreaterEqual(log.count("upstream mq: connected"), 3, log[-4000:])


class KilledWithTwoLanes(unittest.TestCase):
    def test_gateway_killed_while_live_and_backlog_lanes_run(self):
        """A backlog built while the upstream was down, the upstream back (fresh data first: a
        live lane and a backlog lane, both in the cursor), and the gateway SIGKILLed twice while
        both lanes have chunks in flight (50 ms of latency on its link). The restarted gateway
        resumes both lanes from the cursor; nothing lost, duplicates only where chunks were in
        flight."""
        rows, window = 500, 4
        with h.workdir("fwd-lanes") as wd:
            broker = h.Mosquitto(wd).start()
            upstream = f.UpstreamBroker(wd).start()
            port = upstream.port
            receiver = f.Receiver(wd, port).start()
            upstream.stop()  # down; the receiver's session is saved
            db = wd / "fieldlink.db"
            with f.DelayProxy(port, delay=0.05) as link:
                upstreams = [f.mqtt_upstream("mq", link.port, batch_rows=rows, window=window, fresh_first_rows=1000)]
                gateway = f.ForwardGateway(wd, broker.port, db, upstreams).start()
                load = ["--channels", "16", "--period", "5", "--batch-size", "256", "--window", "8",
                        "--ack-timeout", "3000", "--drain-timeout", "120"]
                readers = [h.Reader(wd, f"tl{i}", broker.port, load).start() for i in range(2)]
                at_kills = []
                try:
                    h.wait_for(lambda: f.stored_count(db) >= 30_000, 120, "a backlog of 30,000 readings", interval=0.2)
                    upstream = f.UpstreamBroker(wd, port=port).start()
                    receiver.wait_subscribed(2)
                    for _ in range(2):
                        h.wait_for(lambda: (f.cursor(db, "mq") or {}).get("live_from_id") is not None, 60,
                                   "a live lane in the cursor", interval=0.02)
                        h.wait_for(lambda: link.pending_to_client() > 0, 20, "a PUBACK on its way", interval=0.002)
                        f.kill(gateway)
                        at_kills.append(f.cursor(db, "mq"))
                        time.sleep(0.3)
                        gateway = f.ForwardGateway(wd, broker.port, db, upstreams).start()
                    for r in readers:
                        r.signal(signal.SIGTERM)
                    local = f.settle_chain(self, readers, gateway, db, ["mq"])
                    got = f.wait_received(receiver, local.readings.keys())
                    self.assertEqual(gateway.stop(), 0, gateway.log()[-3000:])
                finally:
                    f.stop_all(readers, gateway, receiver, upstream, broker)
            f.assert_mqtt_forwarded(self, local, got)
            self.assertTrue(all(c["live_from_id"] is not None for c in at_kills), at_kills)
            spans = [s for c in at_kills for s in f.in_flight_spans(local, c, window, rows)]
            f.assert_duplicates_in_flight(self, local, got, spans)
            self.assertGreaterEqual(gateway.log().count("; live data from "), 2,
                                    "each restart resumed both lanes from the cursor")


def pg_locker(server, table="fieldlink_readings"):
    """A psql session holding an EXCLUSIVE lock on the table until it dies: the gateway's
    chunk transaction then waits inside its INSERT (after BEGIN and the COPY)."""
    psql = subprocess.Popen(
        [str(pg_harness.PG_BIN / "psql"), "-X", "-q", "-w", "-h", "127.0.0.1", "-p", str(server.port),
         "-U", pg_harness.SUPERUSER, "-d", pg_harness.DATABASE],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    psql.stdin.write(f"BEGIN; LOCK TABLE {table} IN EXCLUSIVE MODE; SELECT pg_sleep(600);\n".encode())
    psql.stdin.flush()
    return psql


def gateway_waits_on_lock(server):
    out = server.query("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'fieldlink-gateway'"
                       " AND xact_start IS NOT NULL AND wait_event_type = 'Lock'")
    return out.strip() not in ("", "0")


@unittest.skipIf(PG_MISSING, PG_MISSING)
class PostgresKilled(unittest.TestCase):
    def test_postmaster_killed_mid_transaction_and_started(self):
        with h.workdir("fwd-pgkill") as wd:
            server = pg_harness.PostgresServer(wd).start()
            broker = h.Mosquitto(wd).start()
            db = wd / "fieldlink.db"
            upstreams = [f.postgres_upstream("pg", server, batch_rows=BATCH_ROWS)]
            gateway = f.ForwardGateway(wd, broker.port, db, upstreams).start()
            readers = [h.Reader(wd, f"pk{i}", broker.port, f.LOAD + ["--duration", "16"]).start() for i in range(3)]
            try:
                for _ in range(2):
                    time.sleep(3)
                    h.wait_for(lambda: server.query("SELECT to_regclass('fieldlink_readings') IS NOT NULL") == "t",
                               20, "the gateway to create its table")
                    locker = pg_locker(server)
                    try:
                        h.wait_for(lambda: gateway_waits_on_lock(server), 20,
                                   "a chunk transaction of the gateway inside its INSERT", interval=0.1)
                        server.kill()  # SIGKILL of the postmaster with the chunk's transaction open
                    finally:
                        locker.kill()
                        locker.wait()
                        locker.stdin.close()
                    time.sleep(1)
                    server.start()  # crash recovery; the open transaction is gone
                local = f.settle_chain(self, readers, gateway, db, ["pg"])
                self.assertEqual(gateway.stop(), 0, gateway.log()[-3000:])
                f.assert_postgres_forwarded(self, local, server)
            finally:
                f.stop_all(readers, gateway, broker, server)
            self.assertGreaterEqual(server.log().count("database system was interrupted"), 2, server.log()[-3000:])


@unittest.skipIf(PG_MISSING, PG_MISSING)
class LinkFaults(unittest.TestCase):
    def test_link_partitioned_stalled_and_reset(self):
        """Each upstream behind its own netproxy: pass, drop, pass, stall, pass, two resets."""
        with h.workdir("fwd-link") as wd:
            server = pg_harness.PostgresServer(wd).start()
            broker = h.Mosquitto(wd).start()
            upstream = f.UpstreamBroker(wd).start()
            receiver = f.Receiver(wd, upstream.port).start()  # the receiver's own link is fine
            db = wd / "fieldlink.db"
            with netproxy.Proxy(upstream.port) as mq_proxy, netproxy.Proxy(server.port) as pg_proxy:
                upstreams = [f.mqtt_upstream("mq", mq_proxy.port, batch_rows=BATCH_ROWS, window=WINDOW,
                                             keep_alive_s=2),
                             f.postgres_upstream("pg", server, port=pg_proxy.port, batch_rows=BATCH_ROWS)]
                gateway = f.ForwardGateway(wd, broker.port, db, upstreams).start()
                readers = [h.Reader(wd, f"lf{i}", broker.port, f.LOAD + ["--duration", "20"]).start()
                           for i in range(3)]
                proxies = (mq_proxy, pg_proxy)
                try:
                    for mode, seconds in [(netproxy.PASS, 3), (netproxy.DROP, 3), (netproxy.PASS, 3),
                                          (netproxy.STALL, 5), (netproxy.PASS, 3)]:
                        for p in proxies:
                            p.set_mode(mode)
                        time.sleep(seconds)
                    for _ in range(2):
                        for p in proxies:
                            p.reset_all()
                        time.sleep(2)
                    local = f.settle_chain(self, readers, gateway, db, ["mq", "pg"])
                    got = f.wait_received(receiver, local.readings.keys())
                    self.assertEqual(gateway.stop(), 0, gateway.log()[-3000:])
                    f.assert_postgres_forwarded(self, local, server)
                finally:
                    f.stop_all(readers, gateway, receiver, upstream, broker, server)
                for name, p in (("mq", mq_proxy), ("pg", pg_proxy)):
                    self.assertGreater(p.connections_seen, 2, f"upstream {name} never reconnected")
            f.assert_mqtt_forwarded(self, local, got)
            log = gateway.log()
            for name in ("mq", "pg"):  # the partition was noticed, and the links came back
                self.assertIn(f"upstream {name}: cannot connect", log)
                self.assertGreaterEqual(log.count(f"upstream {name}: connected\n"), 2, log[-3000:])


if __name__ == "__main__":
    unittest.main()
