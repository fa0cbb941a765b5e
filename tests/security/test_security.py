"""Devices can only be themselves: a real Mosquitto running the shipped production
variant (no anonymous access, password file, pattern ACL, TLS on a test CA), the real
gateway and host readers over TLS with user names and passwords."""

import json
import os
import subprocess
import unittest
from pathlib import Path

import security_harness as s
from security_harness import h

CLI = os.environ.get("FIELDLINK_CLI", "")
PASSWORDS = {s.GATEWAY_USER: "gw-secret-1", "devA": "a-secret-1", "devB": "b-secret-1"}


def json_batch(incarnation, first_seq, values):
    return json.dumps({"v": 1, "incarnation": incarnation, "first_seq": first_seq,
                       "readings": [{"ch": 0, "t": 1000 + i, "v": v} for i, v in enumerate(values)]})


def settings(path):
    """The configuration lines of a Mosquitto file (no comments or blanks)."""
    return [line for line in Path(path).read_text().splitlines() if line.strip() and not line.startswith("#")]


class ConfigShape(unittest.TestCase):
    """No broker: the production variant keeps every setting of fieldlink.conf but its listener."""

    def test_production_variant_keeps_the_queueing_settings(self):
        shipped = [x for x in settings(h.SHIPPED_MOSQUITTO_CONF) if not x.startswith(("listener", "allow_anonymous"))]
        production = settings(s.PRODUCTION_CONF)
        for line in shipped:
            self.assertIn(line, production, "fieldlink.conf setting missing in the production variant")
        for line in ("allow_anonymous false", "per_listener_settings false", "listener 8883",
                     "listener 1883 127.0.0.1", "password_file /etc/mosquitto/fieldlink.passwd",
                     "acl_file /etc/mosquitto/fieldlink.acl", "cafile /etc/mosquitto/certs/ca.crt",
                     "certfile /etc/mosquitto/certs/server.crt", "keyfile /etc/mosquitto/certs/server.key"):
            self.assertIn(line, production)
        self.assertNotIn("allow_anonymous true", production)

    def test_acl_devices_by_user_name_only(self):
        acl = settings(s.SHIPPED_ACL)
        self.assertEqual([x for x in acl if x.startswith("pattern")],
                         ["pattern write fieldlink/v1/%u/up", "pattern write fieldlink/v1/%u/status",
                          "pattern write fieldlink/v1/%u/telemetry", "pattern read fieldlink/v1/%u/ack"])
        self.assertFalse([x for x in acl if "%c" in x])


class Secured(unittest.TestCase):
    """One broker (and PKI) per test, in its own temporary folder."""

    def setUp(self):
        self._dir = h.workdir("security")
        self.wd = self._dir.__enter__()
        self.pki = s.Pki(self.wd / "certs")
        self.passwd = self.wd / "fieldlink.passwd"
        for user, password in PASSWORDS.items():
            s.add_user(self.passwd, user, password)
        self.broker = s.SecureMosquitto(self.wd, self.pki, self.passwd).start()
        self.processes = [self.broker]

    def tearDown(self):
        for p in reversed(self.processes):
            p.stop()
        self._dir.__exit__(None, None, None)

    def start(self, process):
        self.processes.insert(1, process)
        return process.start()

    def gateway(self, tls=True, name="gateway", password=PASSWORDS[s.GATEWAY_USER], port=None, ca=None,
                verify_host=True):
        db = self.wd / f"{name}.db"
        if tls:
            uri = f"ssl://127.0.0.1:{port or self.broker.tls_port}"
            ca_file = ca or self.pki.crt("ca")
        else:
            uri, ca_file = f"tcp://127.0.0.1:{self.broker.plain_port}", ""
        config = s.gateway_config(self.wd / f"{name}.toml", uri, db, password, ca_file, verify_host)
        return self.start(s.SecureGateway(self.wd, config, name)), db

    def reader(self, device, password, port=None, extra=(), tls=True, ca=None):
        password_file = self.wd / f"{device}.password"
        password_file.write_text(password + "\n")
        args = ["--username", device, "--password-file", password_file, "--keepalive", "5",
                "--connect-timeout", "3000", "--reconnect-min", "200", "--reconnect-max", "1000"]
        if tls:
            args += ["--tls", "--ca-file", ca or self.pki.crt("ca")]
        reader = h.Reader(self.wd, device, port or (self.broker.tls_port if tls else self.broker.plain_port),
                          [*args, *extra])
        return self.start(reader)


class Authentication(Secured):
    def test_anonymous_clients_are_refused(self):
        for tls in (False, True):
            with self.subTest(tls=tls):
                refused = s.publish(self.broker, "fieldlink/v1/devA/up", "x", tls=tls)
                self.assertNotEqual(refused.returncode, 0, refused)
                self.assertIn(b"not authorised", refused.stderr.lower() + refused.stdout.lower())
        # Control: the same publish with devA's password goes through.
        ok = s.publish(self.broker, "fieldlink/v1/devA/telemetry", "x", tls=True, user="devA",
                       password=PASSWORDS["devA"])
        self.assertEqual(ok.returncode, 0, ok)

    def test_wrong_password_is_refused(self):
        for tls in (False, True):
            with self.subTest(tls=tls):
                refused = s.publish(self.broker, "fieldlink/v1/devA/up", "x", tls=tls, user="devA",
                                    password="not-" + PASSWORDS["devA"])
                self.assertNotEqual(refused.returncode, 0, refused)
                # Another device's password is wrong too.
                other = s.publish(self.broker, "fieldlink/v1/devA/up", "x", tls=tls, user="devA",
                                  password=PASSWORDS["devB"])
                self.assertNotEqual(other.returncode, 0, other)

    def test_gateway_with_a_wrong_password_never_subscribes(self):
        gateway, _ = self.gateway(password="wrong")
        h.wait_for(lambda: gateway.log().count("cannot connect") >= 2, 60, "two refused connection attempts")
        self.assertNotIn("subscribed to", gateway.log())


class Authorisation(Secured):
    def test_a_device_cannot_publish_as_another(self):
        gateway, db = self.gateway()
        gateway.wait_subscribed()
        devA = {"user": "devA", "password": PASSWORDS["devA"], "tls": True}
        # Forged first: devA's batch, birth and health on devB's topics. Mosquitto answers
        # PUBACK but delivers nothing (MQTT 3.1.1 has no way to say "denied").
        for kind, payload in (("up", json_batch("b1", 1, [66.0, 66.5])), ("status", "forged"),
                              ("telemetry", "forged")):
            forged = s.publish(self.broker, f"fieldlink/v1/devB/{kind}", payload, retain=kind == "status", **devA)
            self.assertEqual(forged.returncode, 0, forged)
        # Then devA's own batch on its own topic, on a later connection: once it is
        # stored, anything the broker had routed before it has reached the gateway too.
        own = s.publish(self.broker, "fieldlink/v1/devA/up", json_batch("a1", 1, [1.5]), **devA)
        self.assertEqual(own.returncode, 0, own)
        h.wait_for(lambda: h.query(db, "SELECT count(*) FROM readings WHERE device = 'devA'")[0][0] == 1, 30,
                   "devA's own reading to be stored")
        self.assertEqual(h.query(db, "SELECT count(*) FROM readings WHERE device != 'devA'"), [(0,)])
        self.assertEqual(h.query(db, "SELECT count(*) FROM dead_letters"), [(0,)])
        self.assertEqual(h.query(db, "SELECT count(*) FROM devices WHERE device = 'devB'"), [(0,)])
        self.assertEqual(h.query(db, "SELECT count(*) FROM device_health"), [(0,)])
        # The broker kept no forged retained birth for devB either.
        retained = subprocess.run(["mosquitto_sub", *s.client_args(self.broker, s.GATEWAY_USER,
                                                                   PASSWORDS[s.GATEWAY_USER]),
                                   "-t", "fieldlink/v1/devB/status", "--retained-only", "-W", "2", "-v"],
                                  capture_output=True, timeout=30)
        self.assertEqual(retained.stdout, b"")

    def _subscribe(self, user, *filters):
        """mosquitto_sub as `user` for one message; returns the process once its SUBACK arrived."""
        argv = ["stdbuf", "-oL", "mosquitto_sub", *s.client_args(self.broker, user, PASSWORDS[user], tls=True), "-d", "-v",
                "-C", "1"]
        for f in filters:
            argv += ["-t", f]
        out = self.wd / f"sub-{user}-{len(filters)}.out"
        handle = open(out, "wb")
        proc = subprocess.Popen(argv, stdout=handle, stderr=subprocess.STDOUT)
        h.wait_for(lambda: "received SUBACK" in out.read_text(errors="replace") or proc.poll() is not None, 20,
                   f"{user}'s SUBACK")
        return proc, handle, out

    def test_a_device_cannot_read_another_devices_acks(self):
        for filters in (("fieldlink/v1/devB/ack", "fieldlink/v1/devA/ack"), ("fieldlink/v1/#",),
                        ("fieldlink/v1/+/ack", "fieldlink/v1/devA/ack")):
            with self.subTest(filters=filters):
                proc, handle, out = self._subscribe("devA", *filters)
                gw = {"user": s.GATEWAY_USER, "password": PASSWORDS[s.GATEWAY_USER]}
                # devB's ack first, then devA's, from one connection, so they are routed in this order:
                # if devB's reached devA at all it would be the first (and only) message printed.
                for device in ("devB", "devA"):
                    sent = subprocess.run(["mosquitto_pub", *s.client_args(self.broker, **gw), "-q", "1",
                                           "-t", f"fieldlink/v1/{device}/ack", "-m", f"ack-for-{device}"],
                                          capture_output=True, timeout=30)
                    self.assertEqual(sent.returncode, 0, sent)
                if filters == ("fieldlink/v1/#",):
                    # A filter beyond the ACL is refused whole: nothing arrives, not even devA's own ack.
                    seen = subprocess.run(["mosquitto_sub", *s.client_args(self.broker, "devA", PASSWORDS["devA"],
                                                                           tls=True),
                                           "-t", "fieldlink/v1/devA/ack", "-E", "-d"],
                                          capture_output=True, timeout=30)
                    self.assertEqual(seen.returncode, 0, seen)
                    proc.kill()
                    proc.wait()
                    handle.close()
                    text = out.read_text(errors="replace")
                    self.assertNotIn("ack-for-devB", text)
                    self.assertIn("received SUBACK", text)
                    continue
                proc.wait(timeout=30)
                handle.close()
                text = out.read_text(errors="replace")
                self.assertNotIn("ack-for-devB", text)
                self.assertIn("fieldlink/v1/devA/ack ack-for-devA", text)

    def test_only_the_gateway_publishes_acks(self):
        proc, handle, out = self._subscribe("devB", "fieldlink/v1/devB/ack")
        forged = s.publish(self.broker, "fieldlink/v1/devB/ack", "forged-by-devA", user="devA",
                           password=PASSWORDS["devA"], tls=True)
        self.assertEqual(forged.returncode, 0, forged)
        real = s.publish(self.broker, "fieldlink/v1/devB/ack", "from-gateway", user=s.GATEWAY_USER,
                         password=PASSWORDS[s.GATEWAY_USER])
        self.assertEqual(real.returncode, 0, real)
        proc.wait(timeout=30)
        handle.close()
        text = out.read_text(errors="replace")
        self.assertNotIn("forged-by-devA", text)
        self.assertIn("from-gateway", text)


class Tls(Secured):
    def test_gateway_and_readers_over_tls_store_every_reading(self):
        gateway, db = self.gateway(tls=True)
        gateway.wait_subscribed()
        self.assertIn(f"as 'fieldlink-gateway-sec-gateway' with user '{s.GATEWAY_USER}'", gateway.log())
        readers = [
            self.reader("devA", PASSWORDS["devA"], extra=["--duration", "2", "--period", "100"]),
            # A client certificate on the listener that demands one.
            self.reader("devB", PASSWORDS["devB"], port=self.broker.mutual_port,
                        extra=["--duration", "2", "--period", "100", "--cert-file", self.pki.crt("client"),
                               "--key-file", self.pki.key("client")]),
        ]
        for r in readers:
            self.assertEqual(r.wait(60), 0, r.log())
        produced = h.assert_exactly_once(self, readers, db)
        self.assertGreater(len(produced), 10)
        self.assertEqual({k[0] for k in produced}, {"devA", "devB"})

    def test_gateway_refuses_a_wrong_ca_or_host_name(self):
        wrong_ca, _ = self.gateway(name="wrong-ca", ca=self.pki.crt("other-ca"))
        wrong_name, _ = self.gateway(name="wrong-name", port=self.broker.wrong_name_port)
        for gw in (wrong_ca, wrong_name):
            h.wait_for(lambda: gw.log().count("cannot connect") >= 2, 60, f"{gw.name} to fail twice")
        self.assertNotIn("subscribed to", wrong_ca.log() + wrong_name.log())
        # Control: the same listener with host name checking off works, so the name was the reason.
        unchecked, _ = self.gateway(name="unchecked", port=self.broker.wrong_name_port, verify_host=False)
        unchecked.wait_subscribed()

    def test_reader_refuses_a_wrong_ca_or_host_name(self):
        wrong_ca = self.reader("devA", PASSWORDS["devA"], ca=self.pki.crt("other-ca"),
                               extra=["--duration", "1", "--drain-timeout", "2", "--log-level", "debug"])
        wrong_name = self.reader("devB", PASSWORDS["devB"], port=self.broker.wrong_name_port,
                                 extra=["--duration", "1", "--drain-timeout", "2", "--log-level", "debug"])
        for r in (wrong_ca, wrong_name):
            self.assertEqual(r.wait(60), 3, r.log())  # never drained: nothing was acknowledged
            self.assertNotIn("connected to the broker", r.log())
        self.assertIn("certificate verify failed: self-signed certificate in certificate chain", wrong_ca.log())
        self.assertIn("certificate verify failed: IP address mismatch", wrong_name.log())
        # Control: the wrong-name listener with --no-verify-host, and the mutual one without a certificate.
        unchecked = self.reader("devA", PASSWORDS["devA"], port=self.broker.wrong_name_port,
                                extra=["--no-verify-host", "--duration", "1", "--drain-timeout", "2"])
        self.assertEqual(unchecked.wait(60), 3, unchecked.log())  # no gateway runs, so no acks
        self.assertIn("connected to the broker", unchecked.log())
        no_cert = self.reader("devB", PASSWORDS["devB"], port=self.broker.mutual_port,
                              extra=["--duration", "1", "--drain-timeout", "2"])
        self.assertEqual(no_cert.wait(60), 3, no_cert.log())
        self.assertNotIn("connected to the broker", no_cert.log())

    def test_reader_with_a_wrong_password_is_refused(self):
        r = self.reader("devA", PASSWORDS["devB"], extra=["--duration", "1", "--drain-timeout", "2"])
        self.assertEqual(r.wait(60), 3, r.log())
        self.assertIn("connection_refused", r.log())


class Mismatch(unittest.TestCase):
    """Without the ACL (the default fieldlink.conf, anonymous): the gateway itself refuses a
    batch whose incarnation belongs to another device, as device_mismatch."""

    def test_batch_on_another_devices_topic_is_dead_lettered(self):
        with h.workdir("mismatch") as wd:
            broker = h.Mosquitto(wd).start()
            db = wd / "gw.db"
            gateway = h.Gateway(wd, broker.port, db).start()
            try:
                h.wait_for(lambda: "subscribed to" in gateway.log(), 30, "the gateway to subscribe")

                def pub(topic, payload):
                    subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(broker.port), "-q", "1",
                                    "-t", topic, "-m", payload], check=True, timeout=30)

                pub("fieldlink/v1/devA/up", json_batch("c3", 1, [1.0]))
                h.wait_for(lambda: h.query(db, "SELECT count(*) FROM readings")[0][0] == 1, 30, "devA's reading")
                pub("fieldlink/v1/devB/up", json_batch("c3", 2, [2.0]))
                pub("fieldlink/v1/devB/up", json_batch("d4", 1, [3.0]))  # devB's own: stored
                h.wait_for(lambda: h.query(db, "SELECT count(*) FROM readings")[0][0] == 2, 30, "devB's own reading")
                self.assertEqual(h.query(db, "SELECT device, incarnation, seq FROM readings ORDER BY device"),
                                 [("devA", 0xc3, 1), ("devB", 0xd4, 1)])
                h.wait_for(lambda: h.query(db, "SELECT count(*) FROM dead_letters")[0][0] == 1, 30, "the dead letter")
                self.assertEqual(h.query(db, "SELECT topic, error FROM dead_letters"),
                                 [("fieldlink/v1/devB/up", "device_mismatch")])
                self.assertIn("device_mismatch", gateway.log())
            finally:
                gateway.stop()
                broker.stop()


@unittest.skipUnless(CLI, "FIELDLINK_CLI not set (the fieldlink command was not built)")
class DeviceAdd(Secured):
    def test_device_add_creates_a_working_credential(self):
        gateway, db = self.gateway(tls=True)
        gateway.wait_subscribed()
        pid_file = self.wd / "mosquitto.pid"
        pid_file.write_text(f"{self.broker.proc.pid}\n")
        added = subprocess.run([CLI, "device", "add", "plant-9", "--password-file", self.passwd,
                                "--acl-file", s.SHIPPED_ACL, "--host", "127.0.0.1", "--port",
                                str(self.broker.tls_port), "--ca-file", self.pki.crt("ca"), "--reload",
                                "--pid-file", pid_file], capture_output=True, text=True, timeout=60)
        self.assertEqual(added.returncode, 0, added.stderr)
        line = next(x for x in added.stdout.splitlines() if x.startswith("fieldlink://"))
        password = line.split("//", 1)[1].split("@", 1)[0].split(":", 1)[1]
        self.assertIn("plant-9:", self.passwd.read_text())
        # The printed settings work: the new device publishes over TLS and is stored.
        h.wait_for(lambda: s.publish(self.broker, "fieldlink/v1/plant-9/telemetry", "x", tls=True, user="plant-9",
                                     password=password).returncode == 0, 30, "the broker to reload its passwords")
        r = self.reader("plant-9", password, extra=["--duration", "1", "--period", "100"])
        self.assertEqual(r.wait(60), 0, r.log())
        h.assert_exactly_once(self, [r], db)
        # And it is still only itself.
        forged = s.publish(self.broker, "fieldlink/v1/devA/up", json_batch("c1", 1, [9.0]), tls=True,
                           user="plant-9", password=password)
        self.assertEqual(forged.returncode, 0, forged)
        self.assertEqual(h.query(db, "SELECT count(*) FROM readings WHERE device = 'devA'"), [(0,)])


if __name__ == "__main__":
    unittest.main()
