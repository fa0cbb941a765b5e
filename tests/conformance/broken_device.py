#!/usr/bin/env python3
"""A small fieldlink device written to be wrong on purpose, to prove the conformance checker.

It behaves like a reader (docs/protocol.md): retained birth and last will on …/status, fake
readings in RAM, binary batches at QoS 1 on …/up, at most --window batches beyond the commit-ack
watermark, a resend from the watermark after --ack-timeout ms without progress or after a
reconnect, and the wall-clock offset from each accepted ack. --fault breaks one rule:

  none             correct behaviour (the checker must pass it)
  trim-on-puback   forgets readings when the broker PUBACKs them, so it can never resend them
  never-resend     keeps readings, but neither an ack timeout nor a reconnect makes it resend
  ignore-window    publishes every new reading at once, without a window limit
"""

import argparse
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mqtt_client as mqtt  # noqa: E402
import wire  # noqa: E402

FAULTS = ("none", "trim-on-puback", "never-resend", "ignore-window")
FIRMWARE = "broken-double-1"


class Device:
    def __init__(self, args):
        self.args = args
        self.fault = args.fault
        self.incarnation = random.getrandbits(64) or 1
        self.start = time.monotonic()
        self.readings = {}         # seq -> Record, oldest first (dicts keep insertion order)
        self.next_seq = 1
        self.acked = 0             # highest commit-ack watermark accepted
        self.send_from = 1         # next seq to publish
        self.window = []           # [last_seq] of batches published and not yet acked
        self.puback_last = {}      # packet id -> last seq of that batch (trim-on-puback only)
        self.last_progress = 0.0
        self.offset_ms = None
        self.next_sample = 0.0
        self.client = None
        self.ever_connected = False
        self.topics = {k: wire.topic(args.device, k) for k in ("up", "ack", "status")}

    def mono_ms(self):
        return int((time.monotonic() - self.start) * 1000)

    def status(self, state):
        return wire.encode_status(wire.Status(state, self.incarnation, 0, FIRMWARE))

    # --- link ---------------------------------------------------------------------------

    def connect(self):
        will = mqtt.Will(self.topics["status"], self.status(wire.OFFLINE), qos=1, retain=True)
        client = mqtt.Client(f"reader-{self.args.device}", self.args.host, self.args.port,
                             self.args.keepalive, will)
        try:
            client.connect(timeout=2)
            client.subscribe([(self.topics["ack"], 1)])  # before any batch, so no ack is missed
            client.publish(self.topics["status"], self.status(wire.ONLINE), qos=1, retain=True)
        except (OSError, mqtt.MqttError):
            client.abort()
            return False
        self.client = client
        if self.ever_connected:
            self.rewind()  # in-flight batches may have died with the old connection
        self.ever_connected = True
        return True

    def rewind(self):
        self.window.clear()
        self.last_progress = time.monotonic()
        if self.fault != "never-resend":
            self.send_from = self.acked + 1

    # --- readings and batches -------------------------------------------------------------

    def sample(self):
        now = time.monotonic()
        if now < self.next_sample:
            return
        self.next_sample = now + self.args.period / 1000
        for channel in range(self.args.channels):
            seq = self.next_seq
            self.readings[seq] = wire.Record(channel, self.mono_ms(), 20.0 + channel + (seq % 100) / 8)
            self.next_seq += 1

    def window_full(self):
        return self.fault != "ignore-window" and len(self.window) >= self.args.window

    def publish_batches(self):
        while self.client and not self.window_full():
            first = max(self.send_from, next(iter(self.readings), self.next_seq))  # skip forgotten ones
            records = []
            while first + len(records) in self.readings and len(records) < self.args.batch_size:
                records.append(self.readings[first + len(records)])
            if not records:
                return
            batch = wire.Batch(self.incarnation, first, min(first, self.acked + 1), 0,
                               self.offset_ms or 0, self.offset_ms is not None, tuple(records))
            try:
                pid = self.client.publish(self.topics["up"], wire.encode_batch(batch), qos=1)
            except OSError:
                return  # the reader thread reports the lost link
            if not self.window:
                self.last_progress = time.monotonic()
            self.window.append(batch.last_seq)
            self.puback_last[pid] = batch.last_seq
            self.send_from = batch.last_seq + 1

    def check_ack_timeout(self):
        if self.window and time.monotonic() - self.last_progress >= self.args.ack_timeout / 1000:
            if self.fault != "never-resend":
                self.rewind()

    def trim(self, through):
        for seq in [s for s in self.readings if s <= through]:
            del self.readings[seq]

    # --- events ---------------------------------------------------------------------------

    def on_ack(self, payload):
        try:
            ack = wire.decode_ack(payload)
        except wire.WireError:
            return
        if ack.incarnation != self.incarnation or not self.acked < ack.watermark < self.next_seq:
            return  # another device's, stale, repeated or ahead of what exists
        self.acked = ack.watermark
        self.trim(ack.watermark)
        self.window = [last for last in self.window if last > ack.watermark]
        self.send_from = max(self.send_from, ack.watermark + 1)
        self.offset_ms = ack.gateway_unix_ms - self.mono_ms()
        self.last_progress = time.monotonic()

    def on_puback(self, packet_id):
        last = self.puback_last.pop(packet_id, None)
        if self.fault == "trim-on-puback" and last is not None:
            self.trim(last)  # the bug: PUBACK only means the broker has it

    def handle(self, event):
        if isinstance(event, mqtt.Message) and event.topic == self.topics["ack"]:
            self.on_ack(event.payload)
        elif isinstance(event, mqtt.PubAck):
            self.on_puback(event.packet_id)
        elif isinstance(event, mqtt.Disconnected):
            self.client.abort()
            self.client = None

    def run(self):
        # Runs until killed, like a device; --duration is only a safety net should the checker die.
        while time.monotonic() - self.start < self.args.duration:
            self.sample()
            if self.client is None and not self.connect():
                time.sleep(0.3)
                continue
            self.check_ack_timeout()
            self.publish_batches()
            wait = max(0.0, min(self.next_sample - time.monotonic(), 0.05))
            event = self.client.get(wait)
            while event is not None:
                self.handle(event)
                event = self.client.get(0) if self.client else None


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", required=True)
    p.add_argument("--broker", default="127.0.0.1:1883", help="HOST:PORT (loopback only)")
    p.add_argument("--fault", choices=FAULTS, default="none")
    p.add_argument("--window", type=int, default=4)
    p.add_argument("--ack-timeout", type=int, default=2000, help="ms")
    p.add_argument("--keepalive", type=int, default=2, help="s")
    p.add_argument("--period", type=int, default=20, help="ms between samples of all channels")
    p.add_argument("--channels", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--duration", type=float, default=600, help="s until it exits on its own")
    args = p.parse_args(argv)
    if not wire.is_valid_device_id(args.device):
        p.error("bad device id")
    host, _, port = args.broker.rpartition(":")
    args.host, args.port = host, int(port)
    return args


def main(argv=None):
    device = Device(parse_args(argv))
    try:
        device.run()
    except KeyboardInterrupt:
        pass
    finally:
        if device.client:
            device.client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
