"""A TCP proxy for an emulated serial line (QEMU's `-serial tcp:...,server` on one side, the
serial bridge on the other), on 127.0.0.1. It can damage the bytes as a noisy UART does (flip a
bit, drop a byte, insert a byte, each at a configurable rate per byte, from a fixed seed), cut
the line (connections stay open, every byte in either direction is lost) or unplug it (every
connection closed, new ones closed at once), and plug it back in.

The bridge connects to `port`; for each such connection the proxy connects to the upstream
(QEMU). Either side closing closes both.
"""

import random
import selectors
import socket
import threading

PASS, CUT, UNPLUGGED = "pass", "cut", "unplugged"


class Noise:
    """Per-direction damage: each byte is flipped, dropped or followed by an inserted byte with
    probability `rate` each (so about 3 x rate of the bytes are damaged)."""

    def __init__(self, rate, seed):
        self.rate = rate
        self.rng = random.Random(seed)
        self.flipped = self.dropped = self.inserted = 0

    def apply(self, data):
        if self.rate <= 0:
            return data
        out = bytearray()
        rng, rate = self.rng, self.rate
        for byte in data:
            r = rng.random()
            if r < rate:
                out.append(byte ^ (1 << rng.randrange(8)))
                self.flipped += 1
            elif r < 2 * rate:
                self.dropped += 1
            elif r < 3 * rate:
                out.append(byte)
                out.append(rng.randrange(256))
                self.inserted += 1
            else:
                out.append(byte)
        return bytes(out)


class SerialProxy:
    def __init__(self, upstream_port, noise_rate=0.0, seed=1):
        self.upstream = ("127.0.0.1", upstream_port)
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.listener.setblocking(False)
        self.port = self.listener.getsockname()[1]
        self.mode = PASS
        self.to_device = Noise(noise_rate, seed * 2)
        self.to_bridge = Noise(noise_rate, seed * 2 + 1)
        self.connections = 0
        self.bytes_lost_cut = 0
        self._pairs = {}  # socket -> (peer socket, Noise for bytes read from this socket)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake_r, self._wake_w = socket.socketpair()
        self._sel = selectors.DefaultSelector()
        self._sel.register(self.listener, selectors.EVENT_READ, "accept")
        self._sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._thread = threading.Thread(target=self._run, name="serial-proxy", daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._wake_w.send(b"x")
        self._thread.join(timeout=10)
        for s in list(self._pairs):
            self._close(s)
        self.listener.close()
        self._wake_r.close()
        self._wake_w.close()

    def set_mode(self, mode):
        with self._lock:
            self.mode = mode
        self._wake_w.send(b"x")

    def set_noise(self, rate):
        with self._lock:
            self.to_device.rate = rate
            self.to_bridge.rate = rate

    def damage(self):
        n = (self.to_device, self.to_bridge)
        return {"flipped": sum(x.flipped for x in n), "dropped": sum(x.dropped for x in n),
                "inserted": sum(x.inserted for x in n)}

    def _close(self, s):
        pair = self._pairs.pop(s, None)
        try:
            self._sel.unregister(s)
        except (KeyError, ValueError):
            pass
        s.close()
        if pair:
            self._close(pair[0])

    def _run(self):
        while not self._stop.is_set():
            with self._lock:
                mode = self.mode
            if mode == UNPLUGGED:
                for s in list(self._pairs):
                    self._close(s)
            for key, _ in self._sel.select(timeout=0.2):
                if key.data == "wake":
                    self._wake_r.recv(64)
                elif key.data == "accept":
                    self._accept(mode)
                elif key.fileobj in self._pairs:
                    self._forward(key.fileobj, mode)

    def _accept(self, mode):
        try:
            bridge_side, _ = self.listener.accept()
        except BlockingIOError:
            return
        if mode == UNPLUGGED:
            bridge_side.close()
            return
        try:
            device_side = socket.create_connection(self.upstream, timeout=2)
        except OSError:
            bridge_side.close()
            return
        self.connections += 1
        for s in (bridge_side, device_side):
            s.setblocking(False)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._pairs[bridge_side] = (device_side, self.to_device)
        self._pairs[device_side] = (bridge_side, self.to_bridge)
        self._sel.register(bridge_side, selectors.EVENT_READ, "data")
        self._sel.register(device_side, selectors.EVENT_READ, "data")

    def _forward(self, s, mode):
        try:
            data = s.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._close(s)
            return
        peer, noise = self._pairs[s]
        if mode == CUT:
            self.bytes_lost_cut += len(data)
            return
        with self._lock:
            data = noise.apply(data)
        try:
            peer.setblocking(True)
            peer.sendall(data)
            peer.setblocking(False)
        except OSError:
            self._close(s)
