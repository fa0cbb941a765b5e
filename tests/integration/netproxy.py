"""A TCP proxy on 127.0.0.1 that the fault tests put between readers and the broker
to cut the network: it can pass traffic, stall it (connections stay open, no
bytes move), drop it (every connection closed, new ones closed at once) or reset
it (every connection aborted with an RST)."""

import selectors
import socket
import struct
import threading

PASS, STALL, DROP = "pass", "stall", "drop"


class Proxy:
    def __init__(self, upstream_port, listen_port=0):
        self.upstream = ("127.0.0.1", upstream_port)
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", listen_port))
        self.listener.listen(64)
        self.listener.setblocking(False)
        self.port = self.listener.getsockname()[1]
        self.mode = PASS
        self.connections_seen = 0
        self._reset_pending = False
        self._pairs = {}  # socket -> peer socket
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake_r, self._wake_w = socket.socketpair()
        self._sel = selectors.DefaultSelector()
        self._sel.register(self.listener, selectors.EVENT_READ, "accept")
        self._sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._thread = threading.Thread(target=self._run, name="netproxy", daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._wake()
        self._thread.join(timeout=10)
        with self._lock:
            for s in list(self._pairs):
                self._close(s, abort=False)
        self.listener.close()

    def set_mode(self, mode):
        with self._lock:
            self.mode = mode
        self._wake()

    def reset_all(self):
        """Aborts every open connection with an RST; the mode stays as it is."""
        with self._lock:
            self._reset_pending = True
        self._wake()

    def _wake(self):
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass

    def _close(self, s, abort):
        peer = self._pairs.pop(s, None)
        for sock in (s, peer):
            if sock is None:
                continue
            self._pairs.pop(sock, None)
            try:
                self._sel.unregister(sock)
            except (KeyError, ValueError):
                pass
            if abort:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()

    def _apply_mode(self):
        mode = self.mode
        if self._reset_pending or mode == DROP:
            abort = self._reset_pending
            self._reset_pending = False
            for s in list(self._pairs):
                if s in self._pairs:
                    self._close(s, abort=abort)
        for s in list(self._pairs):
            events = selectors.EVENT_READ if mode == PASS else 0
            try:
                if events:
                    self._sel.modify(s, events, "data")
                else:
                    self._sel.unregister(s)
            except KeyError:
                if events:
                    self._sel.register(s, events, "data")
            except ValueError:
                pass

    def _run(self):
        while not self._stop.is_set():
            for key, _ in self._sel.select(timeout=0.5):
                with self._lock:
                    if key.data == "wake":
                        self._wake_r.recv(4096)
                        self._apply_mode()
                    elif key.data == "accept":
                        self._accept()
                    elif key.fileobj in self._pairs:
                        self._forward(key.fileobj)

    def _accept(self):
        try:
            client, _ = self.listener.accept()
        except BlockingIOError:
            return
        self.connections_seen += 1
        if self.mode == DROP:
            client.close()
            return
        try:
            server = socket.create_connection(self.upstream, timeout=2)
        except OSError:
            client.close()
            return
        for s in (client, server):
            s.setblocking(True)
            s.settimeout(5)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._pairs[client] = server
        self._pairs[server] = client
        if self.mode == PASS:
            self._sel.register(client, selectors.EVENT_READ, "data")
            self._sel.register(server, selectors.EVENT_READ, "data")

    def _forward(self, s):
        peer = self._pairs.get(s)
        try:
            data = s.recv(65536)
            if not data:
                raise OSError("closed")
            peer.sendall(data)
        except OSError:
            self._close(s, abort=False)
