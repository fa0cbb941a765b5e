"""A minimal MQTT 3.1.1 client over a plain socket, loopback only. Standard library only.

Enough for the conformance checker and its test double: CONNECT (clean session, optional last
will), SUBSCRIBE, PUBLISH at QoS 0 or 1, receiving PUBLISH at QoS 0 or 1 (PUBACK sent for
QoS 1, retain flag and QoS kept), PINGREQ keep-alive. One reader thread per connection turns
incoming packets into events on a queue: `Message`, `PubAck`, `Disconnected`.
"""

import ipaddress
import queue
import select
import socket
import struct
import threading
import time
from dataclasses import dataclass

CONNECT, CONNACK, PUBLISH, PUBACK = 1, 2, 3, 4
SUBSCRIBE, SUBACK, PINGREQ, PINGRESP, DISCONNECT = 8, 9, 12, 13, 14
MAX_PACKET = 1 << 20  # far above any fieldlink message; a bigger one means a broken stream


class MqttError(Exception):
    pass


@dataclass(frozen=True)
class Message:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    dup: bool
    mono: float      # time.monotonic() when the packet was read
    wall_ms: int     # wall clock (Unix ms) at the same moment


@dataclass(frozen=True)
class PubAck:
    packet_id: int


@dataclass(frozen=True)
class Disconnected:
    reason: str


@dataclass(frozen=True)
class Will:
    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


def _string(text):
    data = text.encode("utf-8")
    return struct.pack(">H", len(data)) + data


def _remaining_length(n):
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _packet(first_byte, body):
    return bytes([first_byte]) + _remaining_length(len(body)) + body


def _check_loopback(host):
    # The checker and its double never talk to anything but this machine.
    if host != "localhost" and not ipaddress.ip_address(host).is_loopback:
        raise MqttError(f"refusing non-loopback broker address {host}")


class Client:
    def __init__(self, client_id, host="127.0.0.1", port=1883, keepalive_s=10, will=None):
        _check_loopback(host)
        self.client_id = client_id
        self.host, self.port = host, port
        self.keepalive_s = keepalive_s
        self.will = will
        self.events = queue.Queue()
        self._sock = None
        self._send_lock = threading.Lock()
        self._state_lock = threading.Condition()
        self._subacks = {}
        self._next_id = 0
        self._last_send = 0.0
        self._thread = None
        self._closing = False
        self.connected = False

    # --- connection ---------------------------------------------------------------------

    def connect(self, timeout=5.0):
        """Opens the TCP connection and waits for CONNACK; raises OSError or MqttError."""
        sock = socket.create_connection((self.host, self.port), timeout=timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.sendall(self._connect_packet())
            first, body = _read_packet_blocking(sock, time.monotonic() + timeout)
            if first >> 4 != CONNACK or len(body) != 2:
                raise MqttError(f"expected CONNACK, got packet type {first >> 4}")
            if body[1] != 0:
                raise MqttError(f"CONNACK refused with code {body[1]}")
        except BaseException:
            sock.close()
            raise
        sock.settimeout(None)
        self._sock = sock
        self._last_send = time.monotonic()
        self.connected = True
        self._thread = threading.Thread(target=self._read_loop, name=f"mqtt-{self.client_id}", daemon=True)
        self._thread.start()

    def _connect_packet(self):
        flags = 0x02  # clean session: delivery state is the application's business
        payload = _string(self.client_id)
        if self.will:
            flags |= 0x04 | (self.will.qos << 3) | (0x20 if self.will.retain else 0)
            payload += _string(self.will.topic) + struct.pack(">H", len(self.will.payload)) + self.will.payload
        body = _string("MQTT") + bytes([4, flags]) + struct.pack(">H", self.keepalive_s) + payload
        return _packet(CONNECT << 4, body)

    def close(self):
        """Sends DISCONNECT if still connected (so the broker discards the will) and stops the thread."""
        self._closing = True
        if self._sock is not None:
            if self.connected:
                try:
                    self._send(_packet(DISCONNECT << 4, b""))
                except OSError:
                    pass
            self._shutdown()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def abort(self):
        """Drops the connection without DISCONNECT, as a crash would (the broker sends the will)."""
        self._closing = True
        if self._sock is not None:
            self._shutdown()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _shutdown(self):
        self.connected = False
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()

    # --- requests -----------------------------------------------------------------------

    def _packet_id(self):
        with self._state_lock:
            self._next_id = self._next_id % 65535 + 1
            return self._next_id

    def _send(self, data):
        with self._send_lock:
            if self._sock is None:
                raise OSError("not connected")
            self._sock.sendall(data)
            self._last_send = time.monotonic()

    def subscribe(self, topics, timeout=5.0):
        """topics: [(filter, qos)]. Returns the granted QoS list; raises MqttError on timeout/refusal."""
        pid = self._packet_id()
        body = struct.pack(">H", pid) + b"".join(_string(t) + bytes([q]) for t, q in topics)
        self._send(_packet((SUBSCRIBE << 4) | 0x02, body))
        deadline = time.monotonic() + timeout
        with self._state_lock:
            while pid not in self._subacks:
                left = deadline - time.monotonic()
                if left <= 0 or not self.connected:
                    raise MqttError("no SUBACK")
                self._state_lock.wait(min(left, 0.1))
            granted = self._subacks.pop(pid)
        if any(code == 0x80 for code in granted):
            raise MqttError(f"subscription refused: {granted}")
        return granted

    def publish(self, topic, payload, qos=0, retain=False):
        """Returns the packet id (0 for QoS 0); a QoS 1 publish later yields a PubAck event."""
        pid = self._packet_id() if qos else 0
        body = _string(topic) + (struct.pack(">H", pid) if qos else b"") + bytes(payload)
        self._send(_packet((PUBLISH << 4) | (qos << 1) | (1 if retain else 0), body))
        return pid

    def get(self, timeout):
        """The next event, or None after `timeout` seconds."""
        try:
            return self.events.get(timeout=max(0.0, timeout))
        except queue.Empty:
            return None

    # --- reader thread ------------------------------------------------------------------

    def _read_loop(self):
        buffer = bytearray()
        reason = "closed"
        try:
            while not self._closing:
                self._keep_alive()
                readable, _, _ = select.select([self._sock], [], [], 0.1)
                if not readable:
                    continue
                chunk = self._sock.recv(65536)
                if not chunk:
                    reason = "broker closed the connection"
                    break
                buffer += chunk
                while True:
                    parsed = _split_packet(buffer)
                    if parsed is None:
                        break
                    first, body, used = parsed
                    del buffer[:used]
                    self._handle(first, body)
        except (OSError, ValueError, MqttError) as e:
            reason = f"connection error: {e}"
        self.connected = False
        with self._state_lock:
            self._state_lock.notify_all()
        if not self._closing:
            self.events.put(Disconnected(reason))

    def _keep_alive(self):
        # PINGREQ when we have been quiet for half the keep-alive, so the broker never times us out.
        if self.keepalive_s and time.monotonic() - self._last_send >= self.keepalive_s / 2:
            self._send(_packet(PINGREQ << 4, b""))

    def _handle(self, first, body):
        kind = first >> 4
        if kind == PUBLISH:
            self._on_publish(first, body)
        elif kind == PUBACK and len(body) == 2:
            self.events.put(PubAck(struct.unpack(">H", body)[0]))
        elif kind == SUBACK and len(body) >= 3:
            with self._state_lock:
                self._subacks[struct.unpack_from(">H", body)[0]] = list(body[2:])
                self._state_lock.notify_all()
        elif kind == PINGRESP:
            pass
        else:
            raise MqttError(f"unexpected packet type {kind}")

    def _on_publish(self, first, body):
        mono, wall_ms = time.monotonic(), time.time_ns() // 1_000_000
        qos = (first >> 1) & 3
        if qos > 1:
            raise MqttError("QoS 2 delivery; this client subscribes at QoS 1 at most")
        (length,) = struct.unpack_from(">H", body)
        topic = bytes(body[2:2 + length]).decode("utf-8")
        pos = 2 + length
        if qos:
            (pid,) = struct.unpack_from(">H", body, pos)
            pos += 2
        self.events.put(Message(topic, bytes(body[pos:]), qos, bool(first & 1), bool(first & 8), mono, wall_ms))
        if qos:  # after queueing: the application has the message before the broker forgets it
            self._send(_packet(PUBACK << 4, struct.pack(">H", pid)))


def _split_packet(buffer):
    """(first byte, body, bytes used) for the first whole packet in buffer, or None."""
    if len(buffer) < 2:
        return None
    length, multiplier, pos = 0, 1, 1
    while True:
        if pos >= len(buffer):
            return None
        byte = buffer[pos]
        length += (byte & 0x7F) * multiplier
        pos += 1
        if not byte & 0x80:
            break
        multiplier *= 128
        if pos > 4:
            raise MqttError("malformed remaining length")
    if length > MAX_PACKET:
        raise MqttError(f"packet of {length} bytes")
    if len(buffer) < pos + length:
        return None
    return buffer[0], bytes(buffer[pos:pos + length]), pos + length


def _read_packet_blocking(sock, deadline):
    buffer = bytearray()
    while True:
        parsed = _split_packet(buffer)
        if parsed is not None:
            return parsed[0], parsed[1]
        left = deadline - time.monotonic()
        if left <= 0:
            raise MqttError("timed out waiting for the broker")
        sock.settimeout(left)
        chunk = sock.recv(4096)
        if not chunk:
            raise MqttError("broker closed the connection")
        buffer += chunk


def fetch_retained(port, topic, client_id, timeout=3.0):
    """Connects a second, short-lived client and returns the retained message on `topic`
    (a Message with retain=True), or None when the broker has none within `timeout`."""
    client = Client(client_id, port=port, keepalive_s=0)
    client.connect(timeout=timeout)
    try:
        client.subscribe([(topic, 1)], timeout=timeout)
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            event = client.get(left)
            if isinstance(event, Message) and event.topic == topic and event.retain:
                return event
            if isinstance(event, Disconnected):
                return None
        return None
    finally:
        client.close()
