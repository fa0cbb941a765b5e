"""The gateway speaks systemd's service protocol (Type=notify) to a notification
socket that this test holds, as systemd would: READY=1 only once the database is
open and the broker confirmed the subscriptions, WATCHDOG=1 pings at the rate
WATCHDOG_USEC asks for, STOPPING=1 on SIGTERM, then exit 0. Readings still land.
Skipped when the gateway was built without libsystemd (FIELDLINK_SYSTEMD=OFF)."""

import os
import signal
import socket
import threading
import unittest

import harness as h


class NotifySocket:
    """A datagram socket in the test's folder, where the gateway sends sd_notify
    messages. A thread reads it all the time, as systemd does: sd_notify() blocks
    once a few unread datagrams are queued."""

    def __init__(self, path):
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.1)
        self._lock = threading.Lock()
        self._messages = []  # every message, in arrival order, each a dict of its assignments
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self):
        while not self._done.is_set():
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            fields = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
            with self._lock:
                self._messages.append(fields)

    @property
    def messages(self):
        with self._lock:
            return list(self._messages)

    def received(self, key):
        return [m for m in self.messages if key in m]

    def close(self):
        self._done.set()
        self._thread.join()
        self.sock.close()


@unittest.skipUnless(os.environ.get("FIELDLINK_HAVE_LIBSYSTEMD") == "ON",
                     "gateway built without libsystemd: it sends no notifications")
class ServiceNotify(unittest.TestCase):
    def test_ready_after_subscribing_watchdog_pings_and_stopping(self):
        with h.workdir("notify") as wd:
            notify = NotifySocket(wd / "notify.sock")
            port = h.free_port()
            gateway = h.Gateway(wd, port, wd / "fieldlink.db")
            # WATCHDOG_PID unset: the watchdog is for whichever process reads it.
            gateway.env = {"NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "200000"}
            broker = None
            try:
                gateway.start()
                # No broker yet: the database is open, but the gateway is not ready.
                h.wait_for(lambda: "cannot connect" in gateway.log() or not gateway.running(), 20,
                           "a failed connect attempt")
                self.assertTrue(gateway.running(), gateway.log())
                self.assertEqual(notify.received("READY"), [], "READY before the broker was reachable")
                h.wait_for(lambda: len(notify.received("WATCHDOG")) >= 3, 30, "watchdog pings")

                broker = h.Mosquitto(wd, port).start()
                h.wait_for(lambda: notify.received("READY") or not gateway.running(), 60, "READY=1")
                ready = notify.received("READY")
                self.assertEqual(len(ready), 1, notify.messages)
                self.assertEqual(ready[0]["READY"], "1")
                self.assertIn("subscribed", ready[0].get("STATUS", ""))
                self.assertIn("subscribed to", gateway.log(), "READY came before the subscription")

                reader = h.Reader(wd, "notify-1", port, ["--channels", "2", "--period", "20", "--batch-size", "8",
                                                         "--duration", "2", "--drain-timeout", "30"]).start()
                self.assertEqual(reader.wait(timeout=120), 0, reader.log())
                pings = len(notify.received("WATCHDOG"))
                h.wait_for(lambda: len(notify.received("WATCHDOG")) >= pings + 3, 30, "pings while running")

                gateway.signal(signal.SIGTERM)
                self.assertEqual(gateway.wait(timeout=30), 0, gateway.log())
                stopping = notify.received("STOPPING")
                self.assertEqual(len(stopping), 1, notify.messages)
                self.assertEqual(stopping[0]["STOPPING"], "1")
                produced = h.assert_exactly_once(self, [reader], wd / "fieldlink.db")
                self.assertGreater(len(produced), 0)
            finally:
                gateway.stop()
                if broker:
                    broker.stop()
                notify.close()


if __name__ == "__main__":
    unittest.main()
