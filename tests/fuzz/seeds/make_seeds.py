#!/usr/bin/env python3
"""Writes the seed corpora of the text and packet fuzz targets:
tests/fuzz/corpus/{protocol,mqtt,json_batch,config}/ (the spool's come from
make_spool_seeds.cpp, see make_seeds.sh). Deterministic: running it again
gives the same files. Binary protocol messages are taken from the test
vectors in docs/protocol.md, which tests/protocol checks against the real
encoder; MQTT packets are written here byte by byte after the 3.1.1 standard
(the fuzz target checks them against the client's own encoders).

    tests/fuzz/seeds/make_seeds.py [SOURCE_ROOT]
"""
import json
import pathlib
import re
import struct
import sys
import zlib

ROOT = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else pathlib.Path(__file__).resolve().parents[3])
CORPUS = ROOT / "tests" / "fuzz" / "corpus"


def write(target, name, data):
    folder = CORPUS / target
    folder.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    (folder / name).write_bytes(data)


def doc_vectors():
    """name -> bytes for every `<!-- vector: name -->` hex block of docs/protocol.md."""
    text = (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")
    found = {}
    for match in re.finditer(r"<!-- vector: ([\w-]+) -->\s*```text\n(.*?)```", text, re.S):
        found[match.group(1)] = bytes.fromhex(match.group(2).replace("\n", " "))
    return found


# ---- protocol: the doc's telemetry vector beside the existing seeds ---------

VECTORS = doc_vectors()


def protocol_seeds():
    telemetry = VECTORS["telemetry"]
    assert zlib.crc32(telemetry[:-4]) == struct.unpack("<I", telemetry[-4:])[0]
    write("protocol", "telemetry.bin", telemetry)
    write("protocol", "telemetry-bad-crc.bin", telemetry[:-1] + bytes([telemetry[-1] ^ 0x01]))
    write("protocol", "topic-up.bin", "fieldlink/v1/dev-01/up")
    write("protocol", "topic-telemetry.bin", "fieldlink/v1/A_b-9/telemetry")


# ---- mqtt: two control bytes, then what the broker sends ---------------------

def remaining_length(n):
    out = bytearray()
    while True:
        digit, n = n % 128, n // 128
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def packet(first, body):
    return bytes([first]) + remaining_length(len(body)) + body


def u16(v):
    return struct.pack(">H", v)


def mqtt_string(text):
    data = text.encode()
    return u16(len(data)) + data


def connack(present=0, code=0):
    return packet(0x20, bytes([present, code]))


def suback(packet_id, *codes):
    return packet(0x90, u16(packet_id) + bytes(codes))


def puback(packet_id):
    return packet(0x40, u16(packet_id))


def publish(topic, payload, qos=0, packet_id=0, retain=False, dup=False):
    first = 0x30 | (0x08 if dup else 0) | (qos << 1) | (0x01 if retain else 0)
    body = mqtt_string(topic) + (u16(packet_id) if qos else b"") + payload
    return packet(first, body)


PINGRESP = bytes([0xD0, 0x00])
ACK_TOPIC = "fieldlink/v1/fuzz/ack"


def control(rx=2, chunk=1, keep_alive=False, closed_at_end=False, subscribe=True, publish_qos1=True,
            fail_send=0, step=0, publishes=2):
    """The two control bytes of fuzz_mqtt.cpp (see its header comment)."""
    c0 = rx | (chunk << 2) | (0x10 if keep_alive else 0) | (0x20 if closed_at_end else 0)
    c0 |= (0x40 if subscribe else 0) | (0x80 if publish_qos1 else 0)
    c1 = fail_send | (step << 3) | (publishes << 5)
    return bytes([c0, c1])


def mqtt_seeds():
    ack = VECTORS["ack"]
    # SUBSCRIBE takes packet id 1, the two QoS 1 publishes of the first poll 2 and 3.
    happy = connack() + suback(1, 1) + puback(2) + puback(3) + publish(ACK_TOPIC, ack, 1, 7) + PINGRESP
    write("mqtt", "session-happy.bin", control() + happy)
    write("mqtt", "session-happy-bytewise-keepalive.bin", control(chunk=0, keep_alive=True, step=1) + happy)
    write("mqtt", "session-happy-closed-all-at-once.bin", control(chunk=3, closed_at_end=True) + happy)
    write("mqtt", "connack-refused.bin", control(closed_at_end=True) + connack(0, 5))
    write("mqtt", "connack-session-present-retained.bin",
          control(subscribe=False, publish_qos1=False) + connack(1, 0) +
          publish(ACK_TOPIC, ack, 0, retain=True))
    # Larger than a 64-byte receive buffer: skipped, and acknowledged when QoS 1.
    big = bytes(range(200))
    write("mqtt", "publish-oversize-qos1.bin",
          control(rx=0, chunk=1, publishes=1) + connack() + suback(1, 1) + publish(ACK_TOPIC, big, 1, 9) + puback(2))
    write("mqtt", "publish-oversize-qos0.bin",
          control(rx=0, chunk=2) + connack() + publish("fieldlink/v1/fuzz/x", big * 3, 0) + PINGRESP)
    write("mqtt", "suback-failure-unsuback.bin",
          control(publish_qos1=False) + connack() + suback(1, 0x80) + packet(0xB0, u16(9)))
    write("mqtt", "protocol-errors.bin",
          control(chunk=2) + connack() + packet(0x50, u16(1)) + connack() + publish(ACK_TOPIC, b"x", 2, 3))
    write("mqtt", "malformed-connack-flags.bin", control() + packet(0x21, b"\x00\x00") + connack())
    write("mqtt", "keepalive-ping-timeout.bin",
          control(keep_alive=True, subscribe=False, publish_qos1=False, step=3) + connack())
    write("mqtt", "remaining-length-max-and-fifth-byte.bin",
          control(rx=3) + connack() + b"\x30\xff\xff\xff\x7f" + b"\x00\x05" + b"x" * 20)
    write("mqtt", "remaining-length-malformed.bin", control() + connack() + b"\x30\x80\x80\x80\x80\x01")
    write("mqtt", "send-fails.bin", control(fail_send=3, publishes=4) + happy + happy)
    write("mqtt", "many-pubacks-unknown-ids.bin",
          control(publishes=7) + connack() + b"".join(puback(i) for i in range(1, 24)) + suback(1, 0, 1, 2))


# ---- json_batch: payloads of .../up (and, for decode_message, binary ones) ---

def batch(**fields):
    return json.dumps(fields, separators=(",", ":"))


def json_seeds():
    reading = {"ch": 0, "t": 1500, "v": 21.5}
    write("json_batch", "doc-example.json",
          '{"v": 1, "incarnation": "00000000000000a1", "first_seq": 1, "boot": 0,\n'
          ' "readings": [{"ch": 0, "t": 1500, "v": 21.5}, {"ch": 1, "t": 1500, "v": 40.25}]}\n')
    write("json_batch", "all-keys.json",
          batch(v=1, incarnation="FEDCBA9876543210", first_seq=1000, floor_seq=990, boot=4294967295,
                wall_offset_ms=-9223372036854775808,
                readings=[{"ch": 255, "t": 9223372036854775807, "v": -0.0}, {"ch": 3, "t": 0, "v": 1e308}]))
    # The 512-record limit itself needs ~11 KB of JSON, beyond what the target
    # mutates (-max_len=4096); tests/gateway/message_test.cpp checks 512 and 513.
    write("json_batch", "many-records.json",
          batch(v=1, incarnation="a1", first_seq=1, readings=[{"ch": i % 4, "t": i, "v": i / 8} for i in range(100)]))
    write("json_batch", "seq-out-of-range.json",
          batch(v=1, incarnation="1", first_seq=9223372036854775807, readings=[reading, reading]))
    write("json_batch", "seq-overflow.json",
          batch(v=1, incarnation="1", first_seq=18446744073709551615, readings=[reading, reading]))
    write("json_batch", "mono-too-large.json",
          batch(v=1, incarnation="1", first_seq=5, readings=[{"ch": 0, "t": 9223372036854775808, "v": 1}]))
    write("json_batch", "duplicate-key.json", '{"v":1,"incarnation":"a1","first_seq":1,"first_seq":2,'
                                              '"readings":[{"ch":0,"t":1,"v":2.5}]}')
    write("json_batch", "unknown-key.json", '{"v":1,"incarnation":"a1","first_seq":1,"wall_offset":5,'
                                            '"readings":[{"ch":0,"t":1,"v":2.5,"x":0}]}')
    write("json_batch", "not-integers.json", '{"v":1.0,"incarnation":"0xa1","first_seq":"1","floor_seq":2,'
                                             '"boot":-1,"readings":[{"ch":1e2,"t":-5,"v":"nan"}]}')
    write("json_batch", "escapes-and-blanks.json", ' \t\r\n{"\\u0076":1,"incarnation":"\\u0061\\u0031",'
                                                   '"first_seq":1,"readings":[{"ch":0,"t":1,"v":1E-5}]} \n')
    write("json_batch", "bad-utf8-and-trailing.json", b'{"v":1,"incarnation":"\xff\xfe","first_seq":1} [1]')
    write("json_batch", "deep-nesting.json", '{"readings":' + "[" * 200 + "]" * 200 + "}")
    write("json_batch", "empty-object.json", "{}")
    for name in ("batch-synced", "batch-unsynced", "status-online", "telemetry"):
        write("json_batch", name + ".bin", VECTORS[name])


# ---- config: TOML files for apply_toml ------------------------------------------

def config_seeds():
    shipped = (ROOT / "config" / "gateway.toml").read_text(encoding="utf-8")
    write("config", "shipped-gateway.toml", shipped)
    keys_only = "\n".join(line for line in shipped.splitlines() if line and not line.startswith("#")) + "\n"
    write("config", "shipped-keys-only.toml", keys_only)
    write("config", "every-key-changed.toml",
          '[mqtt]\nbroker = "ssl://gateway.local:8883"\nclient_id = "gw-2"\nkeep_alive_s = 65535\n\n'
          "[database]\npath = '/var/lib/fieldlink/db.sqlite'\nsynchronous = \"normal\"\nbusy_timeout_ms = 600000\n\n"
          "[pipeline]\nbatch_rows = 100000\nbatch_delay_ms = 0\nqueue = 1\n\n"
          '[log]\nlevel = "debug"\nstats_interval_s = 86400\n')
    write("config", "inline-and-dotted.toml",
          'mqtt = { broker = "ws://[::1]:9001", keep_alive_s = 0x1F }\n'
          'database.path = """\nmulti\\\n   line \\u00e9\\U0001F600"""\n'
          "log.level = 'warn'\npipeline.queue = 1_000\n")
    write("config", "errors-types-ranges.toml",
          "[pipeline]\nbatch_rows = 0\nbatch_delay_ms = 1.5\nqueue = true\n[log]\nlevel = \"loud\"\n")
    write("config", "error-unknown.toml", "top = 1\n[mqtt]\nbrokr = \"tcp://x\"\n[extra]\nx = 1\n")
    write("config", "error-broker-scheme.toml", '[mqtt]\nbroker = "http://127.0.0.1:1883"\nclient_id = ""\n')
    write("config", "error-array-of-tables.toml", "[[mqtt]]\nbroker = \"tcp://a\"\n[[mqtt]]\n")
    write("config", "gateway-retention-pipeline.toml",
          '[gateway]\nid = "gw-north-1"\n[pipeline]\nmax_incarnations = 1\nmax_ranges_per_incarnation = 2\n'
          "[retention]\nmax_age_s = 86400\nmax_db_bytes = 1_000_000_000\nmin_free_disk_bytes = 0\n"
          "health_max_age_s = 1\ndead_letters_max_age_s = 2\ninterval_s = 3\ndelete_batch_rows = 4\n")
    write("config", "upstreams-mqtt-and-postgres.toml",
          '[[upstream]]\nname = "cloud"\nkind = "mqtt"\nuri = "mqtts://broker.example:8883"\n'
          'topic = "site/{gateway}/{device}"\nmqtt_version = "5"\nusername = "u"\npassword = "p"\n'
          'ca_file = "/etc/ssl/ca.pem"\nverify_host = false\nencoding = "json"\nzstd_level = 3\nwindow = 8\n'
          "fresh_first = false\nmax_bytes_per_s = 1000\n\n"
          '[[upstream]]\nname = "warehouse"\nkind = "postgres"\nconninfo = "host=db dbname=fl"\n'
          'table = "readings"\nbatch_rows = 5000\n')
    write("config", "error-upstream-duplicate-name.toml",
          '[[upstream]]\nname = "cloud"\nkind = "postgres"\nconninfo = "host=a"\n'
          '[[upstream]]\nname = "cloud"\nkind = "mqtt"\nuri = "tcp://b:1883"\n')
    write("config", "error-upstream-wrong-kind-keys.toml",
          '[[upstream]]\nname = "a"\nkind = "postgres"\nuri = "tcp://x"\n[[upstream]]\nname = "a"\nkind = "mqtt"\n'
          '[upstream]\nname = "b"\n')
    write("config", "dates-and-specials.toml",
          "[log]\nstats_interval_s = 1979-05-27T07:32:00Z\n[pipeline]\nqueue = inf\nbatch_rows = +30\n"
          "batch_delay_ms = -0\n")
    write("config", "control-characters-in-strings.toml",
          '[mqtt]\nclient_id = "tab\\there\\u007f\\u0001\\"quoted\\\\"\n[database]\npath = "caf\u00e9/\u65e5\u672c.db"\n')
    # Regression seeds of findings in toml++ itself (docs/fuzzing.md, "Findings").
    write("config", "regression-toml-unreachable-u02f1.toml", b"\xcb\xb1")
    write("config", "regression-toml-unreachable-multiline.toml", b's = """\\\n\xc2\xa7"""\n')
    write("config", "regression-toml-debug-assert.toml", "[=")


protocol_seeds()
mqtt_seeds()
json_seeds()
config_seeds()
