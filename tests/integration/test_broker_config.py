"""The shipped Mosquitto configuration keeps every queued QoS 1 message for an offline
persistent subscriber (the gateway while it restarts); Mosquitto's default drops them."""

import subprocess
import unittest

import harness as h

QUEUED = 3000  # three times Mosquitto's default max_queued_messages


def queue_for_offline_subscriber(broker, client_id, topic):
    """Registers a persistent QoS 1 subscription, disconnects it, publishes QUEUED
    messages while it is away, then reconnects and returns what it receives."""
    base = ["-h", "127.0.0.1", "-p", str(broker.port)]
    # -E: subscribe and exit at once, leaving the persistent session behind.
    subprocess.run(["mosquitto_sub", *base, "-i", client_id, "-c", "-q", "1", "-t", topic, "-E"],
                   check=True, timeout=20)
    lines = "".join(f"m{i}\n" for i in range(QUEUED))
    subprocess.run(["mosquitto_pub", *base, "-q", "1", "-t", topic, "-l"], input=lines.encode(),
                   check=True, timeout=60)
    got = subprocess.run(["mosquitto_sub", *base, "-i", client_id, "-c", "-q", "1", "-t", topic,
                          "-C", str(QUEUED), "-W", "10"], capture_output=True, timeout=60)
    return got.stdout.decode().split()


class BrokerConfig(unittest.TestCase):
    def test_shipped_config_keeps_every_queued_message(self):
        with h.workdir("broker") as wd:
            broker = h.Mosquitto(wd).start()
            try:
                received = queue_for_offline_subscriber(broker, "gw-shipped", "fieldlink/v1/q/up")
            finally:
                broker.stop()
            self.assertEqual(len(received), QUEUED)
            self.assertEqual(sorted(set(received)), sorted(f"m{i}" for i in range(QUEUED)))

    def test_mosquitto_default_would_drop(self):
        """Control: the same scenario on Mosquitto's defaults loses messages, so the test
        above can fail and the shipped setting is what saves them."""
        with h.workdir("broker-default") as wd:
            broker = h.Mosquitto(wd)
            conf = wd / "mosquitto.conf"
            conf.write_text(f"listener {broker.port} 127.0.0.1\nallow_anonymous true\n")
            broker.start()
            try:
                received = queue_for_offline_subscriber(broker, "gw-default", "fieldlink/v1/q/up")
            finally:
                broker.stop()
            self.assertLess(len(received), QUEUED)

    def test_accepted_beside_debians_main_config(self):
        """On a gateway host the file goes to /etc/mosquitto/conf.d/ next to Debian's main
        configuration, which sets persistence_location itself."""
        with h.workdir("broker-debian") as wd:
            confd = wd / "conf.d"
            confd.mkdir()
            port = h.free_port()
            text = h.SHIPPED_MOSQUITTO_CONF.read_text().replace("listener 1883", f"listener {port} 127.0.0.1")
            (confd / "fieldlink.conf").write_text(text)
            (wd / "data").mkdir()
            main = wd / "mosquitto.conf"
            main.write_text(f"persistence true\npersistence_location {wd}/data/\nuser {h.getpass.getuser()}\n"
                            f"include_dir {confd}\n")
            broker = h.Process("mosquitto", ["mosquitto", "-c", main], wd).start()
            try:
                h.wait_for(lambda: h.port_open(port) or not broker.running(), 10, "mosquitto to listen")
                self.assertTrue(broker.running(), broker.log())
            finally:
                broker.stop()


if __name__ == "__main__":
    unittest.main()
