"""The anchor scenario: 10,000 readings are queued in the gateway for upstreams that are down
(the readers produce while the upstreams are absent), the gateway is killed with SIGKILL,
then the upstreams come up and the gateway is restarted: every one of the 10,000 arrives, at
an MQTT broker and in PostgreSQL. Prints "fieldlink delivered N of N" per upstream."""

import signal
import unittest

import forward_harness as f
import harness as h
import netproxy
import pg_harness

READINGS = 10_000
READERS = 4
PER_READER = READINGS // READERS
# A RAM store of exactly PER_READER readings that refuses more: with the link to the local
# broker cut, each reader samples exactly that many, then stops sampling.
READER = ["--channels", "4", "--period", "5", "--batch-size", "128", "--window", "4",
          "--buffer", str(PER_READER), "--full-policy", "refuse", "--drain-timeout", "120"]


class Anchor(unittest.TestCase):
    def test_10000_queued_gateway_killed_then_upstreams_up(self):
        pg_missing = f.pg_skip_reason()
        with h.workdir("fwd-anchor") as wd:
            broker = h.Mosquitto(wd).start()
            upstream = f.UpstreamBroker(wd).start()
            port = upstream.port
            receiver = f.Receiver(wd, port).start()
            upstream.stop()  # the MQTT upstream is down (its subscriber's session kept)
            server = None
            upstreams = [f.mqtt_upstream("mq", port)]
            if not pg_missing:  # PostgreSQL: its port is known, the server is not started yet
                server = pg_harness.PostgresServer(wd)
                upstreams.append(f.postgres_upstream("pg", server))
            else:
                f.log(f"PostgreSQL part skipped: {pg_missing}")
            names = [u["name"] for u in upstreams]
            db = wd / "fieldlink.db"
            gateway = f.ForwardGateway(wd, broker.port, db, upstreams).start()
            with netproxy.Proxy(broker.port) as proxy:
                proxy.set_mode(netproxy.DROP)
                readers = [h.Reader(wd, f"anchor{i}", proxy.port, READER).start() for i in range(READERS)]
                try:
                    h.wait_for(lambda: all(h.record_count(r) >= PER_READER for r in readers), 60,
                               f"{READERS} readers to hold {PER_READER} readings each", interval=0.1)
                    for r in readers:
                        r.signal(signal.SIGTERM)  # no more sampling; deliver what is held, then exit
                    proxy.set_mode(netproxy.PASS)
                    f.drain_readers(self, readers, timeout=120)
                    produced = h.assert_exactly_once(self, readers, db)
                    self.assertEqual(len(produced), READINGS)
                    for name in names:
                        self.assertEqual(f.cursor(db, name)["next_id"], 1, f"{name}: forwarded to a down upstream")
                    f.kill(gateway)  # SIGKILL with all 10,000 queued for the upstreams
                    self.assertEqual(f.stored_count(db), READINGS)

                    upstream = f.UpstreamBroker(wd, port=port).start()
                    receiver.wait_subscribed(2)
                    if server:
                        server.start()
                    gateway = f.ForwardGateway(wd, broker.port, db, upstreams).start()
                    f.wait_forwarded(db, names, gateway, timeout=120)
                    local = f.read_local(db)
                    got = f.wait_received(receiver, local.readings.keys())
                    self.assertEqual(gateway.stop(), 0, gateway.log()[-3000:])
                    if server:
                        rows = f.assert_postgres_forwarded(self, local, server)
                        print(f"fieldlink delivered {rows} of {READINGS} (PostgreSQL upstream, 0 duplicates)",
                              flush=True)
                finally:
                    f.stop_all(readers, gateway, receiver, upstream, broker, server)
            f.assert_mqtt_forwarded(self, local, got)
            delivered = len(local.readings.keys() & got.readings.keys())
            print(f"fieldlink delivered {delivered} of {READINGS} (MQTT upstream, {got.duplicates} duplicates)",
                  flush=True)
            self.assertEqual(delivered, READINGS)


if __name__ == "__main__":
    unittest.main()
