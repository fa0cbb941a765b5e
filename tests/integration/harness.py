"""Real processes for integration and fault tests: a private Mosquitto started from
the shipped configuration, the gateway and simulated readers, all on 127.0.0.1."""

import contextlib
import getpass
import os
import re
import signal
import socket
import sqlite3
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHIPPED_MOSQUITTO_CONF = ROOT / "config" / "mosquitto" / "fieldlink.conf"
GATEWAY = os.environ.get("FIELDLINK_GATEWAY", "fieldlink-gateway")
READER = os.environ.get("FIELDLINK_READER", "fieldlink-reader")
# A cross build's programs run under qemu-user: the emulator's command line, space-separated.
EMULATOR = os.environ.get("FIELDLINK_EMULATOR", "").split()


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout, what, interval=0.05):
    """Polls until predicate() is truthy; fails naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def port_open(port):
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
        return True
    return False


class Process:
    """A child process whose output goes to a log file; stopped on exit."""

    def __init__(self, name, argv, workdir):
        self.name = name
        self.argv = [str(a) for a in argv]
        if EMULATOR and self.argv and self.argv[0] in (str(GATEWAY), str(READER)):
            self.argv = EMULATOR + self.argv
        self.log_path = Path(workdir) / f"{name}.log"
        self.out_path = Path(workdir) / f"{name}.out"
        self.proc = None
        self.env = None  # extra environment variables for the child

    def start(self):
        self._log = open(self.log_path, "ab")
        self._out = open(self.out_path, "ab")
        env = None if self.env is None else {**os.environ, **self.env}
        self.proc = subprocess.Popen(self.argv, stdout=self._out, stderr=self._log, stdin=subprocess.DEVNULL, env=env)
        return self

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        if self.running():
            self.proc.send_signal(sig)

    def wait(self, timeout):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.name} did not exit within {timeout}s; log:\n{self.log()}")

    def stop(self, timeout=20):
        if self.running():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for f in (getattr(self, "_log", None), getattr(self, "_out", None)):
            if f:
                f.close()
        return self.proc.returncode if self.proc else None

    def kill(self):
        if self.running():
            self.proc.kill()
            self.proc.wait()

    def log(self):
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stdout(self):
        return self.out_path.read_text(errors="replace") if self.out_path.exists() else ""


class Mosquitto(Process):
    """Mosquitto from config/mosquitto/fieldlink.conf with only the listener
    changed and a persistence folder added, so the tests exercise the shipped file."""

    def __init__(self, workdir, port=None):
        self.port = port or free_port()
        conf = Path(workdir) / "mosquitto.conf"
        persistence = Path(workdir) / "mosquitto-data"
        persistence.mkdir(exist_ok=True)
        text = SHIPPED_MOSQUITTO_CONF.read_text()
        text, listeners = re.subn(r"(?m)^listener .*$", f"listener {self.port} 127.0.0.1", text)
        assert listeners == 1, "shipped mosquitto config changed shape"
        # Debian's main mosquitto.conf supplies these on a gateway host; as root,
        # mosquitto would otherwise switch to a user that cannot write here.
        text += f"\npersistence_location {persistence}/\nuser {getpass.getuser()}\n"
        conf.write_text(text)
        super().__init__("mosquitto", ["mosquitto", "-c", conf], workdir)

    def start(self):
        super().start()
        wait_for(lambda: port_open(self.port) or not self.running(), 10, "mosquitto to listen")
        if not self.running():
            raise AssertionError(f"mosquitto exited:\n{self.log()}")
        return self

    @property
    def uri(self):
        return f"tcp://127.0.0.1:{self.port}"


class Gateway(Process):
    def __init__(self, workdir, broker_port, db, extra=()):
        argv = [GATEWAY, "--broker", f"tcp://127.0.0.1:{broker_port}", "--db", db,
                "--client-id", f"fieldlink-gateway-test-{broker_port}", "--log-level", "info",
                "--stats-interval", "0", *extra]
        super().__init__("gateway", argv, workdir)


class Reader(Process):
    def __init__(self, workdir, device, broker_port, extra=()):
        self.device = device
        self.record_file = Path(workdir) / f"{device}.produced.csv"
        argv = [READER, "--device", device, "--broker", f"127.0.0.1:{broker_port}",
                "--record-file", self.record_file, *extra]
        super().__init__(f"reader-{device}", argv, workdir)

    def summary(self):
        for line in self.stdout().splitlines():
            if line.startswith("summary "):
                return dict(kv.split("=", 1) for kv in line.split()[1:])
        return None


def read_produced(paths):
    """{(device, incarnation, seq): (boot, channel, mono_ms, value)} from readers' record files."""
    produced = {}
    for path in paths:
        for line in Path(path).read_text().splitlines():
            device, inc, seq, boot, channel, mono, value = line.split(",")
            key = (device, int(inc, 16), int(seq))
            assert key not in produced, f"reader reported {key} twice"
            produced[key] = (int(boot), int(channel), int(mono), float(value))
    return produced


def u64(v):
    return v & 0xFFFFFFFFFFFFFFFF


def read_stored(db):
    """Same shape as read_produced, from the gateway's SQLite file; also the raw row count."""
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        rows = conn.execute(
            "SELECT device, incarnation, seq, boot, channel, mono_ms, value FROM readings").fetchall()
    stored = {(d, u64(i), s): (b, c, m, v) for d, i, s, b, c, m, v in rows}
    return stored, len(rows)


def query(db, sql, *args):
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)) as conn:
        return conn.execute(sql, args).fetchall()


@contextlib.contextmanager
def workdir(prefix):
    keep = os.environ.get("FIELDLINK_KEEP_TEST_DIR")
    path = tempfile.mkdtemp(prefix=f"fieldlink-{prefix}-")
    try:
        yield Path(path)
    finally:
        if not keep:
            subprocess.run(["rm", "-rf", path], check=False)


def assert_exactly_once(test, readers, db, may_be_unrecorded=()):
    """Compares the readings the readers recorded with the rows in SQLite: none lost,
    none doubled, every field equal. `may_be_unrecorded` lists keys that may be stored
    without a record line (a reader killed between its durable append and the line)."""
    produced = read_produced([r.record_file for r in readers])
    stored, row_count = read_stored(db)
    missing = produced.keys() - stored.keys()
    extra = stored.keys() - produced.keys() - set(may_be_unrecorded)
    test.assertFalse(missing, f"{len(missing)} of {len(produced)} readings lost, e.g. {sorted(missing)[:5]}")
    test.assertFalse(extra, f"{len(extra)} stored readings nobody recorded, e.g. {sorted(extra)[:5]}")
    test.assertEqual(row_count, len(stored), "duplicate rows")
    differing = [k for k, v in produced.items() if stored[k] != v]
    test.assertFalse(differing, f"stored with other fields: {differing[:5]}")
    return produced


def record_count(reader):
    try:
        with open(reader.record_file, "rb") as f:
            return sum(1 for _ in f)
    except FileNotFoundError:
        return 0
