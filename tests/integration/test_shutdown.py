"""SIGTERM ends the real gateway with exit 0 whatever the broker is doing: absent,
accepting TCP but never answering CONNACK, or gone while Paho reconnects by itself
(a systemd stop during a broker outage must not mark the unit failed)."""

import contextlib
import signal
import socket
import threading
import unittest

import harness as h


class SilentBroker:
    """Accepts TCP connections on a loopback port and never sends a byte back."""

    def __init__(self, port):
        self.port = port
        self.accepted = 0
        self._conns = []
        self._done = threading.Event()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", port))
        self._sock.listen(16)
        self._sock.settimeout(0.1)
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self):
        while not self._done.is_set():
            with contextlib.suppress(socket.timeout, OSError):
                conn, _ = self._sock.accept()
                self._conns.append(conn)  # held open, never read
                self.accepted += 1

    def close(self):
        self._done.set()
        self._thread.join()
        for c in self._conns:
            c.close()
        self._sock.close()


class Shutdown(unittest.TestCase):
    def sigterm_exits_cleanly(self, gateway):
        gateway.signal(signal.SIGTERM)
        code = gateway.wait(timeout=30)
        log = gateway.log()
        self.assertEqual(code, 0, f"exit {code} after SIGTERM; log:\n{log}")
        self.assertNotRegex(log, r"Z error ", "an error was logged on the way out")
        self.assertIn("stopped:", log, "the final stats line is missing")

    def test_sigterm_with_no_broker_listening(self):
        with h.workdir("shutdown-absent") as wd:
            gateway = h.Gateway(wd, h.free_port(), wd / "fieldlink.db").start()
            try:
                h.wait_for(lambda: "cannot connect" in gateway.log() or not gateway.running(), 20,
                           "a failed connect attempt")
                self.sigterm_exits_cleanly(gateway)
            finally:
                gateway.stop()

    def test_sigterm_while_the_broker_never_answers_connect(self):
        with h.workdir("shutdown-silent") as wd:
            silent = SilentBroker(h.free_port())
            gateway = h.Gateway(wd, silent.port, wd / "fieldlink.db").start()
            try:
                h.wait_for(lambda: silent.accepted >= 1 or not gateway.running(), 20, "the gateway's TCP connect")
                self.sigterm_exits_cleanly(gateway)
            finally:
                gateway.stop()
                silent.close()

    def test_sigterm_during_automatic_reconnect(self):
        with h.workdir("shutdown-reconnect") as wd:
            broker = h.Mosquitto(wd).start()
            gateway = h.Gateway(wd, broker.port, wd / "fieldlink.db").start()
            silent = None
            try:
                h.wait_for(lambda: "subscribed" in gateway.log() or not gateway.running(), 20, "gateway to subscribe")
                broker.kill()
                silent = SilentBroker(broker.port)
                h.wait_for(lambda: silent.accepted >= 1 or not gateway.running(), 30, "Paho's reconnect attempt")
                self.sigterm_exits_cleanly(gateway)
            finally:
                gateway.stop()
                broker.stop()
                if silent:
                    silent.close()


if __name__ == "__main__":
    unittest.main()
