#!/usr/bin/env python3
"""fieldlink benchmarks: the backlog drain and the steady-state rate, each next to
ceilings measured in the same run on the same machine (docs/benchmarks.md).

    bench/run.py --out bench-results.json --out bench-results.md
    bench/run.py --loadgen ...    many devices (fieldlink-loadgen), the SQLite ceiling, disk wear
    bench/run.py --growth ...     ingest rate and RSS as the database grows

Builds what it needs (Release) unless --no-build, then starts private Mosquitto
brokers from config/mosquitto/fieldlink.conf, the gateway, the benchmark savers
and readers, all on 127.0.0.1, and prints a results table. Python 3 standard
library only; reuses tests/integration/harness.py and netproxy.py.
"""

import argparse
import datetime as dt
import json
import math
import os
import platform
import re
import shlex
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.dont_write_bytecode = True  # leave no __pycache__ in tests/
sys.path.insert(0, str(ROOT / "tests" / "integration"))
import harness as h  # noqa: E402
import netproxy  # noqa: E402

# Sixteen channels every millisecond: the fastest a host reader samples.
FAST_CHANNELS = 16
FAST_PERIOD_MS = 1
# The configuration of the backlog fault test (tests/integration/test_backlog.py).
MAIN_WINDOW, MAIN_BATCH = 8, 256
READER_DEFAULT_WINDOW, READER_DEFAULT_BATCH = 4, 32
# A 4 KiB sector of the host board's flash spool holds this many readings (fieldlink-reader --help).
FLASH_READINGS_PER_SECTOR = 126

GATEWAY, SQLITE_NODELAY, NULL, NULL_NODELAY = "gateway", "sqlite+nodelay", "null", "null+nodelay"
SAVER_TEXT = {
    GATEWAY: "fieldlink-gateway (SQLite)",
    SQLITE_NODELAY: "bench saver, SQLite, TCP_NODELAY",
    NULL: "bench saver, null store",
    NULL_NODELAY: "bench saver, null store, TCP_NODELAY",
}

_STARTED = time.monotonic()


def log(message):
    print(f"[{time.monotonic() - _STARTED:6.1f}s] {message}", file=sys.stderr, flush=True)


# --- build -----------------------------------------------------------------------


def build(build_dir, jobs):
    """Configures (Release) and builds the fieldlink-bench target; returns the program paths."""
    configure = ["cmake", "-S", str(ROOT), "-B", str(build_dir), "-DCMAKE_BUILD_TYPE=Release",
                 "-DFIELDLINK_BUILD_TESTS=OFF", "-DFIELDLINK_BUILD_BENCH=ON"]
    if not (build_dir / "CMakeCache.txt").exists() and shutil.which("ninja"):
        configure += ["-G", "Ninja"]
    log(f"configuring {build_dir} (Release)")
    subprocess.run(configure, check=True, stdout=subprocess.DEVNULL)
    log("building fieldlink-bench (gateway, reader, bench saver, broker ceiling)")
    subprocess.run(["cmake", "--build", str(build_dir), "--target", "fieldlink-bench", "-j", str(jobs)], check=True)
    return programs(build_dir)


def programs(build_dir):
    listing = build_dir / "bench" / "programs.json"
    if not listing.exists():
        sys.exit(f"{listing} is missing: build first (drop --no-build)")
    found = json.loads(listing.read_text())
    if found.get("build_type") != "Release":
        log(f"warning: {build_dir} is a {found.get('build_type') or 'no-type'} build, not Release")
    return found


# --- helpers -----------------------------------------------------------------------

LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})Z ")


def log_time(line):
    """Seconds since the epoch of a reader log line ("2024-05-01T12:00:00.123Z info ...")."""
    match = LOG_TIME.match(line)
    if not match:
        return None
    stamp = dt.datetime.strptime(match.group(1), "%Y-%m-%dT%H:%M:%S.%f").replace(tzinfo=dt.timezone.utc)
    return stamp.timestamp()


def summary_of(process):
    for line in process.stdout().splitlines():
        if line.startswith("summary "):
            return {k: v for k, v in (kv.split("=", 1) for kv in line.split()[1:])}
    raise AssertionError(f"{process.name} printed no summary; log:\n{process.log()[-3000:]}")


def key_values(text):
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", text)}


def saver_stats(saver):
    """The saver's counters at exit: the bench saver's JSON line, or the gateway's "stopped:" log line."""
    out = saver.stdout().strip().splitlines()
    if out and out[-1].startswith("{"):
        return json.loads(out[-1])
    stopped = [line for line in saver.log().splitlines() if "stopped: " in line]
    if not stopped:
        return {}
    values = key_values(stopped[-1].split("stopped: ", 1)[1])
    return {"received": values.get("received"), "readings": values.get("stored"),
            "duplicates": values.get("duplicates"), "commits": values.get("commits"), "acks_sent": values.get("acks")}


def start_saver(kind, wd, broker, db, tools, args, batch_delay_ms=None):
    client_id = f"fieldlink-bench-{broker.port}"
    if kind == GATEWAY:
        argv = [tools["gateway"], "--broker", broker.uri, "--db", db, "--client-id", client_id,
                "--stats-interval", "0", "--log-level", "info", *shlex.split(args.gateway_args)]
    else:
        store = "sqlite" if kind.startswith("sqlite") else "null"
        argv = [tools["saver"], "--store", store, "--db", db, "--broker", broker.uri, "--client-id", client_id,
                "--log-level", "info"]
        if kind.endswith("+nodelay"):
            argv.append("--tcp-nodelay")
    delay = args.batch_delay_ms if batch_delay_ms is None else batch_delay_ms
    argv += ["--batch-rows", str(args.batch_rows), "--batch-delay-ms", str(delay)]
    saver = h.Process(kind.replace("+", "-"), argv, wd).start()
    h.wait_for(lambda: "subscribed to" in saver.log() or not saver.running(), 20, f"{kind} to subscribe")
    if not saver.running():
        raise AssertionError(f"{kind} exited:\n{saver.log()[-3000:]}")
    if kind.endswith("+nodelay"):
        h.wait_for(lambda: "bench saver ready" in saver.log(), 20, f"{kind} to set TCP_NODELAY")
    return saver


def reader_argv(tools, args, device, port, window, batch, extra=()):
    argv = [tools["reader"], "--device", device, "--broker", f"127.0.0.1:{port}",
            "--batch-size", str(batch), "--window", str(window), "--log-level", "info", *extra]
    return argv + [a.format(device=device) for a in shlex.split(args.reader_args or "")]


# --- ceilings ------------------------------------------------------------------------


def broker_ceiling(tools, args, batch, repeats=5):
    """The same Mosquitto delivering backlog/batch batches of `batch` records to a subscriber
    that decodes and stores nothing; the median of `repeats` timed rounds."""
    messages = math.ceil(args.backlog / batch)
    with h.workdir("bench-broker") as wd:
        broker = h.Mosquitto(wd).start()
        try:
            done = subprocess.run([tools["broker_ceiling"], "--broker", broker.uri, "--messages", str(messages),
                                   "--records", str(batch), "--inflight", "100", "--repeat", str(repeats)],
                                  capture_output=True, text=True, timeout=300)
        finally:
            broker.stop()
    if done.returncode != 0:
        raise AssertionError(f"broker ceiling failed: {done.stdout} {done.stderr}")
    run = json.loads(done.stdout)
    rates = run["readings_per_s"]
    return {"batch": batch, "messages": messages, "payload_bytes": run["payload_bytes"], "inflight": 100,
            "readings_per_s": statistics.median(rates), "runs_readings_per_s": rates}


# --- drain ---------------------------------------------------------------------------


def store_args(store, wd, device, capacity):
    """Reader options for its store: a RAM ring, or the flash spool in a file (with or without
    fdatasync after every flash write) just big enough for `capacity` readings."""
    if store == "ram":
        return ["--buffer", capacity]
    sectors = math.ceil(capacity / FLASH_READINGS_PER_SECTOR) + 1  # one sector always stays free
    argv = ["--flash", Path(wd) / f"{device}.flash", "--flash-sectors", sectors]
    return argv + (["--no-flash-sync"] if store == "flash-nosync" else [])


def drain(tools, args, kind, window, batch, backlog, store="ram", batch_delay_ms=None):
    """One device builds a backlog of `backlog` readings behind a dropped link, stops
    sampling, then the link comes up: time until its commit acks cover everything."""
    delay = args.batch_delay_ms if batch_delay_ms is None else batch_delay_ms
    log(f"drain: {SAVER_TEXT[kind]}, window {window} x batch {batch}, backlog {backlog:,}, {store} store, "
        f"batch_delay_ms {delay}")
    with h.workdir("bench-drain") as wd:
        broker = h.Mosquitto(wd).start()
        db = wd / "fieldlink.db"
        saver = reader = None
        try:
            saver = start_saver(kind, wd, broker, db, tools, args, delay)
            with netproxy.Proxy(broker.port) as proxy:
                proxy.set_mode(netproxy.DROP)
                # A full store that refuses new readings: the backlog is `backlog` (a flash
                # spool rounds it up to whole sectors).
                reader = h.Process("reader", reader_argv(
                    tools, args, "bench-drain", proxy.port, window, batch,
                    ["--channels", FAST_CHANNELS, "--period", FAST_PERIOD_MS,
                     *store_args(store, wd, "bench-drain", backlog),
                     "--full-policy", "refuse", "--reconnect-min", "5", "--reconnect-max", "20",
                     "--drain-timeout", "300"]), wd).start()
                started = time.monotonic()
                # A flash spool syncs every append, so on a slow disk filling it takes minutes (not measured).
                h.wait_for(lambda: "store full" in reader.log() or not reader.running(), 120 if store == "ram" else 900,
                           f"a backlog of {backlog} readings", interval=0.1)
                build_s = time.monotonic() - started
                reader.signal(signal.SIGTERM)  # stop sampling; drain once the link is up
                h.wait_for(lambda: "stopping:" in reader.log() or not reader.running(), 10, "the reader to stop")
                if not reader.running():
                    raise AssertionError(f"reader exited early:\n{reader.log()[-3000:]}")
                link_up = time.monotonic()
                proxy.set_mode(netproxy.PASS)
                code = reader.proc.wait()  # bounded by --drain-timeout
                wall_s = time.monotonic() - link_up
            summary = summary_of(reader)
            if code != 0:
                raise AssertionError(f"reader exit {code} (drain not finished): {summary}")
            saver.stop()
            stats = saver_stats(saver)

            # From the reader's own log: ready to publish -> the ack that covered everything.
            lines = reader.log().splitlines()
            ready = [log_time(l) for l in lines if "subscribed to commit acks; publishing" in l]
            last = log_time(lines[-1]) if lines else None
            drain_s = last - ready[-1] if ready and last and last > ready[-1] else wall_s
            drain_s = max(drain_s, 0.001)  # the log has millisecond stamps
            produced = int(summary["produced"])
            result = {
                "saver": kind, "window": window, "batch": batch, "store": store, "batch_delay_ms": delay,
                "backlog": produced,
                "build_s": round(build_s, 2), "drain_s": round(drain_s, 3), "wall_s": round(wall_s, 3),
                "readings_per_s": round(produced / drain_s), "rounds": math.ceil(produced / (window * batch)),
                "ms_per_round": round(drain_s * 1000 / math.ceil(produced / (window * batch)), 2),
                "resends": int(summary["resends"]), "reconnects": int(summary["reconnects"]),
                "commits": stats.get("commits"), "batches_received": stats.get("received"),
            }
            if not backlog <= produced < backlog + FLASH_READINGS_PER_SECTOR or \
                    int(summary["acked_through"]) != produced:
                raise AssertionError(f"unexpected reader summary: {summary}")
            if kind in (GATEWAY, SQLITE_NODELAY):
                rows, distinct = h.query(db, "SELECT count(*), count(DISTINCT seq) FROM readings")[0]
                first_rx = h.query(db, "SELECT min(received_unix_ms) FROM readings")[0][0]
                mark, updated = h.query(db, "SELECT watermark, updated_unix_ms FROM watermarks")[0]
                if rows != produced or distinct != produced or mark != produced:
                    raise AssertionError(f"database has {rows} rows, {distinct} distinct, watermark {mark}; "
                                         f"expected {produced}")
                result["stored_rows"] = rows
                # The gateway's own view: first batch received -> commit of the last watermark.
                result["gateway_side_s"] = round((updated - first_rx) / 1000, 3)
            log(f"  {result['readings_per_s']:,} readings/s ({drain_s:.3f} s, {result['ms_per_round']} ms per "
                f"window round trip)")
            return result
        finally:
            for process in (reader, saver, broker):
                if process:
                    process.stop()


# --- steady state -----------------------------------------------------------------------


def steady(tools, args, window, batch, kind=GATEWAY):
    """args.readers readers sampling as fast as configured straight into the broker; the
    saver stores in SQLite. Samples the stored count and each device's watermark age."""
    log(f"steady: {SAVER_TEXT[kind]}, {args.readers} readers x {FAST_CHANNELS} channels every {FAST_PERIOD_MS} ms, "
        f"window {window} x batch {batch}, {args.warmup:g} s warm-up + {args.steady_seconds:g} s")
    with h.workdir("bench-steady") as wd:
        broker = h.Mosquitto(wd).start()
        db = wd / "fieldlink.db"
        saver = None
        readers = []
        try:
            saver = start_saver(kind, wd, broker, db, tools, args)
            started = {}
            for i in range(args.readers):
                device = f"bench-steady-{i}"
                started[device] = time.monotonic()  # the reader's clock starts at 0 about now
                readers.append(h.Process(f"reader-{i}", reader_argv(
                    tools, args, device, broker.port, window, batch,
                    ["--channels", FAST_CHANNELS, "--period", FAST_PERIOD_MS, "--buffer", "2000000",
                     "--drain-timeout", "120"]), wd).start())
            begin = time.monotonic()
            samples = []
            conn = None
            while True:
                now = time.monotonic()
                if now - begin >= args.warmup + args.steady_seconds:
                    break
                time.sleep(min(0.5, args.warmup + args.steady_seconds - (now - begin)))
                if conn is None and db.exists():
                    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
                if conn is None:
                    continue
                at = time.monotonic()
                stored = conn.execute("SELECT coalesce(max(id), 0) FROM readings").fetchone()[0]
                # Newest contiguously stored reading per device, via the unique index.
                newest = conn.execute(
                    "SELECT w.device, r.mono_ms FROM watermarks w JOIN readings r ON r.device = w.device"
                    " AND r.incarnation = w.incarnation AND r.seq = w.watermark").fetchall()
                lags = [(at - started[d]) * 1000 - mono for d, mono in newest if d in started]
                samples.append({"t": at - begin, "stored": stored, "lag_ms": lags})
            stored_at_stop = conn.execute("SELECT coalesce(max(id), 0) FROM readings").fetchone()[0] if conn else 0
            stop = time.monotonic()
            for reader in readers:
                reader.signal(signal.SIGTERM)
            codes = [reader.proc.wait() for reader in readers]
            caught_up_s = time.monotonic() - stop
            if conn:
                conn.close()
            summaries = [summary_of(r) for r in readers]
            produced = sum(int(s["produced"]) for s in summaries)
            dropped = sum(int(s["dropped"]) for s in summaries)
            saver.stop()
            rows = h.query(db, "SELECT count(*) FROM readings")[0][0]
            window_samples = [s for s in samples if s["t"] >= args.warmup]
            if len(window_samples) < 2:
                raise AssertionError("too few samples in the measurement window")
            first, last = window_samples[0], window_samples[-1]
            stored_rate = (last["stored"] - first["stored"]) / (last["t"] - first["t"])
            lags = sorted(l for s in window_samples for l in s["lag_ms"])
            result = {
                "saver": kind, "readers": args.readers, "channels": FAST_CHANNELS, "period_ms": FAST_PERIOD_MS,
                "window": window, "batch": batch, "measured_s": round(last["t"] - first["t"], 2),
                "offered_per_s": args.readers * FAST_CHANNELS * 1000 // FAST_PERIOD_MS,
                "produced_per_s": round(produced / (stop - min(started.values()))),
                "stored_per_s": round(stored_rate),
                "lag_ms_p50": round(lags[len(lags) // 2]) if lags else None,
                "lag_ms_p95": round(lags[int(len(lags) * 0.95)]) if lags else None,
                "lag_ms_max": round(lags[-1]) if lags else None,
                "behind_at_stop": produced - stored_at_stop, "stored_at_stop": stored_at_stop,
                "catch_up_s": round(caught_up_s, 2),
                "produced": produced, "stored_rows": rows, "dropped": dropped,
                "all_drained": all(c == 0 for c in codes) and rows == produced,
            }
            log(f"  {result['stored_per_s']:,} readings/s stored (produced {result['produced_per_s']:,}/s), "
                f"watermark age p50 {result['lag_ms_p50']} ms, max {result['lag_ms_max']} ms")
            return result
        finally:
            for process in (*readers, saver, broker):
                if process:
                    process.stop()


# --- many devices (fieldlink-loadgen) -------------------------------------------------------


def proc_cpu_s(pid):
    """User + system CPU seconds of a process so far (/proc/PID/stat fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_status_kib(pid, field):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return None


def proc_write_bytes(pid):
    """Bytes the process caused to be sent to the block layer (/proc/PID/io write_bytes)."""
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    raise AssertionError(f"no write_bytes in /proc/{pid}/io")


def count_fsyncs(pid, path):
    """perf counting the process's fsync and fdatasync calls at their kernel tracepoints (no stop
    of the process, unlike strace, whose stops slowed the writer enough to change the commit sizes);
    it writes its counts to `path` when the process exits. None where perf cannot (no linux-perf,
    or kernel.perf_event_paranoid too strict for this user)."""
    if shutil.which("perf") is None:
        return None
    proc = subprocess.Popen(["perf", "stat", "-x", ",", "-o", str(path), "-e",
                             "syscalls:sys_enter_fsync,syscalls:sys_enter_fdatasync", "-p", str(pid)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)  # attached before the load starts
    if proc.poll() is not None:
        log(f"  perf stat could not count fsyncs (exit {proc.returncode}); fsyncs not measured")
        return None
    return proc


def fsync_calls(perf, path):
    """The sum of perf's counts (-x , lines: value,unit,event,...), once perf has exited."""
    if perf is None:
        return None
    perf.wait(timeout=30)
    calls = 0
    for line in Path(path).read_text().splitlines():
        fields = line.split(",")
        if len(fields) > 2 and fields[2].startswith("syscalls:sys_enter_f") and fields[0].isdigit():
            calls += int(fields[0])
    return calls


def sqlite_ceiling(tools, args, batch, rows):
    """SQLite alone, the saver's rows through the gateway's store library, in a temporary folder
    (the same disk as the gateway's database in the other runs)."""
    log(f"sqlite ceiling: {rows:,} rows in messages of {batch} from {args.loadgen_devices} devices, "
        f"{args.loadgen_window} messages of a device in a row, transactions of {args.batch_rows} rows")
    with h.workdir("bench-sqlite") as wd:
        done = subprocess.run([tools["sqlite_ceiling"], "--db", wd / "ceiling.db", "--rows", str(rows),
                               "--batch", str(batch), "--batch-rows", str(args.batch_rows),
                               "--devices", str(args.loadgen_devices), "--run-length", str(args.loadgen_window)],
                              capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise AssertionError(f"sqlite ceiling failed: {done.stdout} {done.stderr}")
    result = json.loads(done.stdout)
    runs = {f"{r['synchronous']}/{r['mode']}": r for r in result["runs"]}
    log("  " + ", ".join(f"{k} {fmt_rate(r['rows_per_s'])}/s" for k, r in runs.items()))
    return {"batch": batch, "rows": rows, "runs": runs}


def loadgen_run(tools, args, name, lg_args, disk=False, db_path=None):
    """One fieldlink-loadgen run against the real gateway (its defaults, synchronous=full) and a
    private Mosquitto. Returns the loadgen's summary with the gateway's CPU time and peak RSS, after
    checking that SQLite holds exactly the acked readings. With disk, also what the gateway wrote to
    the disk (write_bytes, the WAL checkpoints during the run included) and its fsync calls, counted
    by perf from just after its start to its exit (so the last checkpoint, at exit, is in them).
    With db_path, the gateway writes that database (kept), and only rows added by this run count."""
    log(f"loadgen: {name}: {' '.join(str(a) for a in lg_args)}")
    with h.workdir("bench-loadgen") as wd:
        broker = h.Mosquitto(wd).start()
        db = Path(db_path) if db_path else wd / "fieldlink.db"
        first_id = h.query(db, "SELECT coalesce(max(id), 0) FROM readings")[0][0] if db.exists() else 0
        gateway = None
        counts = wd / "fsync.perf"
        perf = None
        try:
            gateway = start_saver(GATEWAY, wd, broker, db, tools, args)
            pid = gateway.proc.pid
            perf = count_fsyncs(pid, counts) if disk else None
            cpu_before = proc_cpu_s(pid)
            written_before = proc_write_bytes(pid) if disk else 0
            started = time.monotonic()
            done = subprocess.run([tools["loadgen"], "--port", str(broker.port), "--dump-unacked", wd / "unacked.csv",
                                   *[str(a) for a in lg_args]], capture_output=True, text=True, timeout=900)
            cpu_s = proc_cpu_s(pid) - cpu_before
            written = proc_write_bytes(pid) - written_before if disk else 0
            peak_kib = proc_status_kib(pid, "VmHWM")
            rss_kib = proc_status_kib(pid, "VmRSS")
            if done.returncode != 0:
                raise AssertionError(f"loadgen exit {done.returncode}: {done.stdout} {done.stderr[-2000:]}")
            summary = json.loads(done.stdout.strip().splitlines()[-1])
            gateway.stop()
            lifetime_s = time.monotonic() - started
            stats = saver_stats(gateway)
            rows, distinct = h.query(db, "SELECT count(*), count(DISTINCT device || ':' || incarnation || ':' || seq)"
                                         f" FROM readings WHERE id > {first_id}")[0]
            unacked = (wd / "unacked.csv").read_text().count("\n")
            fsyncs = fsync_calls(perf, counts)  # perf wrote its counts when the gateway exited
        finally:
            for process in (gateway, broker):
                if process:
                    process.stop()
            if perf and perf.poll() is None:
                perf.kill()
    acked = summary["readings_acked"]
    result = {"name": name, "loadgen": summary, "gateway_cpu_s": round(cpu_s, 3),
              "gateway_cpu_us_per_reading": round(cpu_s * 1e6 / rows, 2) if rows else None,
              "gateway_vmhwm_kib": peak_kib, "gateway_vmrss_kib": rss_kib, "stored_rows": rows,
              # The load generator's own CPU (encoding and connecting included): is it the bottleneck?
              "loadgen_cpu_us_per_reading": round(summary["cpu_s"] * 1e6 / acked, 2) if acked else None,
              "all_stored": rows == distinct == acked and unacked == 0,
              "commits": stats.get("commits"), "duplicates": stats.get("duplicates")}
    if disk:
        result.update({"disk_write_bytes": written,
                       "disk_bytes_per_reading": round(written / rows, 1) if rows else None,
                       "fsync_calls": fsyncs, "fsyncs_per_s": round(fsyncs / lifetime_s, 1) if fsyncs else None,
                       "fsyncs_per_commit": ratio(fsyncs, stats.get("commits") or 0)})
        log(f"  disk: {result['disk_bytes_per_reading']} bytes written per reading, "
            f"{result['fsyncs_per_s']} fsyncs/s ({fsyncs} in {lifetime_s:.1f} s, {stats.get('commits')} commits)")
    lat = summary["ack_latency_ms"]
    log(f"  {fmt_rate(summary['acked_readings_per_s'])} readings/s acked, ack p50/p99 {lat['p50']}/{lat['p99']} ms, "
        f"resent {summary['batches_resent']}, gateway {result['gateway_cpu_us_per_reading']} us CPU/reading, "
        f"VmHWM {peak_kib} KiB, all stored {result['all_stored']}")
    if not result["all_stored"]:
        raise AssertionError(f"{name}: {rows} rows ({distinct} distinct) for {acked} acked, {unacked} unacked")
    return result


def loadgen_suite(tools, args):
    """The issue-12 figures: saver max durable rate / SQLite ceiling at 16 and 256 readings per
    message, ack latency at half that rate, 1,000 devices at 10 readings/s (and 10,000 at 1/s)."""
    quick = args.quick
    rows = args.loadgen_rows if args.loadgen_rows else (60_000 if quick else 200_000)
    seconds = args.loadgen_seconds if args.loadgen_seconds else (5 if quick else 12)
    devices = args.loadgen_devices
    out = {"settings": {"rows": rows, "seconds": seconds, "devices": devices, "window": args.loadgen_window}}
    out["sqlite_ceiling"] = {str(b): sqlite_ceiling(tools, args, b, rows) for b in (16, 256)}
    out["max_rate"] = {}
    for batch in (16, 256):
        per_device = math.ceil(rows / devices / batch)
        run = loadgen_run(tools, args, f"max rate, {devices} devices x window {args.loadgen_window} x batch {batch}",
                          ["--devices", devices, "--window", args.loadgen_window, "--batch", batch,
                           "--batches", per_device, "--rate", 0, "--prefix", f"max{batch}"], disk=batch == 16)
        ceiling = out["sqlite_ceiling"][str(batch)]["runs"]["full/store"]["rows_per_s"]
        run["over_sqlite_ceiling"] = ratio(run["loadgen"]["acked_readings_per_s"], ceiling)
        out["max_rate"][str(batch)] = run
    # Half the maximum (16 per message), spread over the same devices.
    half = out["max_rate"]["16"]["loadgen"]["acked_readings_per_s"] / 2
    rate = max(16.0, half / devices)
    out["half_rate"] = loadgen_run(
        tools, args, f"half the max rate, {devices} devices x {rate:.0f} readings/s, batch 16",
        ["--devices", devices, "--window", args.loadgen_window, "--batch", 16, "--rate", f"{rate:.3f}",
         "--duration", seconds, "--batches", math.ceil(rate * seconds / 16) + 2, "--prefix", "half"])
    out["half_rate"]["offered_per_s"] = round(rate * devices)
    # SD-card wear at a site's pace: 1,000 readings/s (100 devices x 10/s in batches of 10).
    out["disk_1k"] = loadgen_run(
        tools, args, "1,000 readings/s: 100 devices x 10 readings/s, batch 10",
        ["--devices", 100, "--window", 4, "--batch", 10, "--rate", 10, "--duration", seconds,
         "--batches", math.ceil(10 * seconds / 10) + 2, "--prefix", "disk"], disk=True)
    out["disk_1k"]["offered_per_s"] = 1000
    fleets = [(1000, 10, 10)] + ([] if quick else [(10_000, 1, 1)])
    out["fleets"] = []
    for count, per_s, batch in fleets:
        run = loadgen_run(tools, args, f"{count:,} devices x {per_s} readings/s, batch {batch}",
                          ["--devices", count, "--window", 4, "--batch", batch, "--rate", per_s,
                           "--duration", seconds, "--batches", math.ceil(per_s * seconds / batch) + 2,
                           "--prefix", f"fleet{count}", "--connect-parallel", 500, "--ack-timeout-ms", 5000])
        run.update({"devices": count, "readings_per_s_each": per_s, "batch": batch, "offered_per_s": count * per_s})
        out["fleets"].append(run)
    return out


GROWTH_DEVICES = 1000


def fill_readings(db, start_row, end_row):
    """Adds rows start_row..end_row-1 to the gateway's own schema as 1,000 devices interleaved
    (grow-00000.., the device ids the load generator uses, each with an incarnation of its own that
    the load generator never draws), with their watermarks: what a gateway that stored them would
    hold. Fast (no fsync, large cache): only the measured runs are durable."""
    con = sqlite3.connect(db, isolation_level=None)
    con.execute("PRAGMA synchronous = OFF")
    con.execute("PRAGMA cache_size = -262144")
    base_ms = 1_700_000_000_000
    step = 100_000

    def device(i):
        return f"grow-{i:05}"

    for chunk in range(start_row, end_row, step):
        last = min(chunk + step, end_row)
        con.execute("BEGIN")
        con.executemany(
            "INSERT INTO readings (device, incarnation, seq, boot, channel, mono_ms, unix_ms, value, received_unix_ms)"
            " VALUES (?, ?, ?, 0, ?, ?, ?, ?, ?)",
            ((device(n % GROWTH_DEVICES), n % GROWTH_DEVICES + 1, n // GROWTH_DEVICES + 1, n % 3,
              (n // GROWTH_DEVICES) * 100, base_ms + (n // GROWTH_DEVICES) * 100, 20.0 + (n % 997) / 100.0,
              base_ms + (n // GROWTH_DEVICES) * 100 + 50) for n in range(chunk, last)))
        con.execute("COMMIT")
    con.execute("BEGIN")
    con.executemany("INSERT OR REPLACE INTO watermarks (device, incarnation, watermark, updated_unix_ms)"
                    " VALUES (?, ?, ?, ?)",
                    ((device(i), i + 1, (end_row - 1 - i) // GROWTH_DEVICES + 1, base_ms)
                     for i in range(min(GROWTH_DEVICES, end_row))))
    con.execute("COMMIT")
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    # The fill ran without fsync: flush it now, or the measured run's first checkpoint pays for it.
    fd = os.open(db, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def growth_suite(tools, args):
    """Ingest rate and gateway RSS as the database grows: one file filled to each size in turn
    (smallest first), and at each size the same load generator run (1,000 devices, the filled
    devices' ids, as fast as the acks allow), the rate a ratio of the empty database's."""
    sizes = sorted(int(x) for x in args.growth_sizes.split(","))
    per_device_batches = max(1, math.ceil(args.growth_rows / GROWTH_DEVICES / 16))
    out = {"settings": {"sizes": sizes, "devices": GROWTH_DEVICES, "rows_per_run": per_device_batches * 16 * GROWTH_DEVICES,
                        "batch": 16, "window": 4, "rounds": args.growth_rounds}, "runs": []}
    with h.workdir("bench-growth") as wd:
        db = wd / "growth.db"
        filled = 0
        for k, size in enumerate(sizes):
            if size > filled:
                if filled == 0 and not db.exists():
                    # The gateway creates its own schema first, so the fill matches it exactly.
                    broker = h.Mosquitto(wd).start()
                    try:
                        start_saver(GATEWAY, wd, broker, db, tools, args).stop()
                    finally:
                        broker.stop()
                begun = time.monotonic()
                fill_readings(db, filled, size)
                log(f"growth: filled to {size:,} rows in {time.monotonic() - begun:.0f} s")
                filled = size
            rounds = []
            for r in range(args.growth_rounds):
                rounds.append(loadgen_run(
                    tools, args, f"{size:,} rows in the database, round {r + 1}",
                    ["--devices", GROWTH_DEVICES, "--window", 4, "--batch", 16, "--batches", per_device_batches,
                     "--rate", 0, "--prefix", "grow", "--seed", 100 + 10 * k + r, "--connect-parallel", 500],
                    db_path=db))
                filled += rounds[-1]["stored_rows"]
            # The median round by rate stands for the size; every round's rate is kept beside it.
            run = sorted(rounds, key=lambda x: x["loadgen"]["acked_readings_per_s"])[len(rounds) // 2]
            run = dict(run, rows_before=size, db_bytes=db.stat().st_size,
                       round_rates=[x["loadgen"]["acked_readings_per_s"] for x in rounds])
            out["runs"].append(run)
    empty = out["runs"][0]["loadgen"]["acked_readings_per_s"]
    for run in out["runs"]:
        run["over_empty"] = ratio(run["loadgen"]["acked_readings_per_s"], empty)
    return out


def growth_markdown(results):
    g = results["growth"]
    m = results["machine"]
    lines = ["# fieldlink benchmark results: growth", "",
             f"- date: {results['date_utc']}", f"- command: `{results['command']}`",
             f"- machine: {m['cpus']} CPUs ({m['cpu_model']}), kernel {m['kernel']}",
             f"- SQLite {m['sqlite']}, commit {m['git_commit']}{' (uncommitted changes)' if m['git_dirty'] else ''}",
             f"- each run: {g['settings']['rows_per_run']:,} readings from {g['settings']['devices']:,} devices "
             f"(batch 16, window 4, as fast as acks allow), {g['settings']['rounds']} rounds at each size "
             f"(the median round shown, each round's rate beside it), gateway defaults, synchronous=full", "",
             "| rows before | acked readings/s (median) | / empty database | rounds, readings/s | ack p99 ms | "
             "gateway VmHWM KiB | gateway CPU us/reading | database MB after |",
             "|---:|---:|---:|---|---:|---:|---:|---:|"]
    for run in g["runs"]:
        s = run["loadgen"]
        lines.append(f"| {run['rows_before']:,} | {fmt_rate(s['acked_readings_per_s'])} | {run['over_empty']} | "
                     f"{' / '.join(fmt_rate(x) for x in run.get('round_rates', []))} | "
                     f"{s['ack_latency_ms']['p99']} | {run['gateway_vmhwm_kib']:,} | "
                     f"{run['gateway_cpu_us_per_reading']} | {run['db_bytes'] / 1e6:.0f} |")
    return "\n".join(lines) + "\n"


def loadgen_markdown(results):
    r = results
    m = r["machine"]
    lg = r["loadgen"]
    lines = ["# fieldlink benchmark results: many devices (load generator)", "",
             f"- date: {r['date_utc']}", f"- command: `{r['command']}`",
             f"- machine: {m['cpus']} CPUs ({m['cpu_model']}), kernel {m['kernel']}, "
             f"load average at start {m['load_average_at_start']}",
             f"- Mosquitto {m['mosquitto']}, SQLite {m['sqlite']}, commit {m['git_commit']}"
             f"{' (uncommitted changes)' if m['git_dirty'] else ''}",
             f"- gateway batch_rows {r['settings']['batch_rows']}, batch_delay_ms {r['settings']['batch_delay_ms']}, "
             f"synchronous=full", "",
             "## SQLite ceiling (no MQTT)", "",
             "| readings per message | rows | full, store library | full, raw INSERT | normal, store library | "
             "normal, raw INSERT | ms per transaction (full) |", "|---:|---:|---:|---:|---:|---:|---:|"]
    for c in lg["sqlite_ceiling"].values():
        runs = c["runs"]
        lines.append(f"| {c['batch']} | {c['rows']:,} | {fmt_rate(runs['full/store']['rows_per_s'])} | "
                     f"{fmt_rate(runs['full/raw']['rows_per_s'])} | {fmt_rate(runs['normal/store']['rows_per_s'])} | "
                     f"{fmt_rate(runs['normal/raw']['rows_per_s'])} | {runs['full/store']['ms_per_transaction']} |")
    lines += ["", "## Gateway through the load generator", "",
              "| run | offered/s | acked readings/s | / SQLite ceiling | ack p50 / p90 / p99 / max ms | resent | "
              "gateway CPU us/reading | loadgen CPU us/reading | gateway VmHWM KiB | all stored |",
              "|---|---:|---:|---:|---|---:|---:|---:|---:|---|"]
    runs = list(lg["max_rate"].values()) + [lg["half_rate"], lg["disk_1k"]] + lg["fleets"]
    for run in runs:
        s = run["loadgen"]
        lat = s["ack_latency_ms"]
        lines.append(f"| {run['name']} | {fmt_rate(run.get('offered_per_s')) if run.get('offered_per_s') else 'max'} | "
                     f"{fmt_rate(s['acked_readings_per_s'])} | {run.get('over_sqlite_ceiling', '')} | "
                     f"{lat['p50']} / {lat['p90']} / {lat['p99']} / {lat['max']} | {s['batches_resent']} | "
                     f"{run['gateway_cpu_us_per_reading']} | {run['loadgen_cpu_us_per_reading']} | "
                     f"{run['gateway_vmhwm_kib']:,} | {run['all_stored']} |")
    lines += ["", "## Disk (SD-card wear)", "",
              "Bytes the gateway process sent to the block layer (`/proc/PID/io` `write_bytes`, WAL and "
              "checkpoints) per stored reading, and its fsync/fdatasync calls (perf, start to exit).", "",
              "| run | acked readings/s | bytes written per reading | fsyncs/s | fsyncs per commit | commits |",
              "|---|---:|---:|---:|---:|---:|"]
    for run in runs:
        if "disk_bytes_per_reading" in run:
            lines.append(f"| {run['name']} | {fmt_rate(run['loadgen']['acked_readings_per_s'])} | "
                         f"{run['disk_bytes_per_reading']} | {run['fsyncs_per_s']} | {run['fsyncs_per_commit']} | "
                         f"{run['commits']} |")
    return "\n".join(lines) + "\n"


def loadgen_table(results):
    return loadgen_markdown(results)


# --- report ------------------------------------------------------------------------------


def machine_info():
    model = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break

    def first_line(argv):
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout.strip().splitlines()[0]
        except (OSError, IndexError, subprocess.SubprocessError):
            return ""

    mosquitto = first_line(["mosquitto", "-h"])
    return {
        "cpus": os.cpu_count(), "cpu_model": model, "kernel": platform.release(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "mosquitto": mosquitto.replace("mosquitto version ", ""),
        "sqlite": sqlite3.sqlite_version,
        "paho_c": first_line(["dpkg-query", "-W", "-f", "${Version}", "libpaho-mqtt1.3"]),
        "git_commit": first_line(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"]),
        "git_dirty": bool(first_line(["git", "-C", str(ROOT), "status", "--porcelain"])),
    }


def ratio(a, b):
    return round(a / b, 3) if a and b else None


def fmt_rate(value):
    return f"{value:,.0f}" if value is not None else "-"


def drain_label(d, default_delay):
    label = SAVER_TEXT[d["saver"]]
    if d["store"] != "ram":
        label += f", reader on {d['store']}"
    if d["batch_delay_ms"] != default_delay:
        label += f", batch_delay_ms {d['batch_delay_ms']}"
    return label


def steady_label(s):
    return f"{SAVER_TEXT[s['saver']]}, {s['readers']} readers"


def markdown(results):
    r = results
    m = r["machine"]
    lines = ["# fieldlink benchmark results", "",
             f"- date: {r['date_utc']}", f"- command: `{r['command']}`",
             f"- machine: {m['cpus']} CPUs ({m['cpu_model']}), kernel {m['kernel']}, "
             f"load average at start {m['load_average_at_start']}",
             f"- Mosquitto {m['mosquitto']}, Paho C {m['paho_c']}, SQLite {m['sqlite']}, commit {m['git_commit']}"
             f"{' (uncommitted changes)' if m['git_dirty'] else ''}",
             f"- backlog {r['settings']['backlog']:,} readings; gateway batch_rows {r['settings']['batch_rows']}, "
             f"batch_delay_ms {r['settings']['batch_delay_ms']}, synchronous=full", ""]
    main = r["drain"]
    broker = r["ceilings"]["broker"][str(main["batch"])]
    lines += ["## Headline", "", "| rate | readings/s | / null-saver drain | / broker ceiling |", "|---|---:|---:|---:|",
              f"| backlog drain, fieldlink-gateway, window {main['window']} x batch {main['batch']} | "
              f"{fmt_rate(main['readings_per_s'])} | {r['ratios']['drain_over_null_saver']} | "
              f"{r['ratios']['drain_over_broker']} |"]
    s = r["steady"]
    lines += [f"| steady state, fieldlink-gateway, {s['readers']} readers, stored (stored at stop / produced "
              f"{r['ratios']['steady_stored_over_produced']}) | {fmt_rate(s['stored_per_s'])} | | "
              f"{r['ratios']['steady_over_broker']} |",
              f"| ceiling: the same drain into the null saver | "
              f"{fmt_rate(r['ceilings']['null_saver_drain']['readings_per_s'])} | 1 | |",
              f"| ceiling: broker alone, {broker['messages']} x {broker['payload_bytes']} B batches | "
              f"{fmt_rate(broker['readings_per_s'])} | | 1 |"]
    lines += ["", "## Drains", "",
              "| saver | window x batch | backlog | drain s | readings/s | ms per window round trip | "
              "/ broker ceiling (same batch) | commits | resends |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for d in r["drains"]:
        ceiling = r["ceilings"]["broker"].get(str(d["batch"]), {}).get("readings_per_s")
        lines.append(f"| {drain_label(d, r['settings']['batch_delay_ms'])} | {d['window']} x {d['batch']} | {d['backlog']:,} | {d['drain_s']} | "
                     f"{fmt_rate(d['readings_per_s'])} | {d['ms_per_round']} | {ratio(d['readings_per_s'], ceiling)} | "
                     f"{d['commits']} | {d['resends']} |")
    rounds = len(next(iter(r["ceilings"]["broker"].values()))["runs_readings_per_s"])
    lines += ["", f"## Broker ceilings (median of {rounds} rounds)", "",
              "| batch | messages | bytes each | readings/s | rounds |", "|---:|---:|---:|---:|---|"]
    for b in r["ceilings"]["broker"].values():
        lines.append(f"| {b['batch']} | {b['messages']} | {b['payload_bytes']} | {fmt_rate(b['readings_per_s'])} | "
                     f"{', '.join(fmt_rate(x) for x in b['runs_readings_per_s'])} |")
    lines += ["", "## Steady state", "",
              f"{s['readers']} readers x {s['channels']} channels every {s['period_ms']} ms (offered "
              f"{s['offered_per_s']:,}/s), window {s['window']} x batch {s['batch']}, measured over "
              f"{s['measured_s']} s after warm-up.", "",
              "| saver | produced/s | stored/s | watermark age p50 / p95 / max ms | behind at stop | catch-up s | "
              "dropped | all stored |", "|---|---:|---:|---|---:|---:|---:|---|"]
    for s in r["steadies"]:
        lines.append(f"| {SAVER_TEXT[s['saver']]} | {fmt_rate(s['produced_per_s'])} | {fmt_rate(s['stored_per_s'])} | "
                     f"{s['lag_ms_p50']} / {s['lag_ms_p95']} / {s['lag_ms_max']} | {s['behind_at_stop']:,} | "
                     f"{s['catch_up_s']} | {s['dropped']} | {s['all_drained']} |")
    return "\n".join(lines) + "\n"


def table(results):
    r = results
    out = [f"fieldlink benchmarks, {r['date_utc']}, {r['machine']['cpus']} CPUs, "
           f"load {r['machine']['load_average_at_start']}",
           f"backlog {r['settings']['backlog']:,} readings, gateway batch_rows {r['settings']['batch_rows']} / "
           f"{r['settings']['batch_delay_ms']} ms", ""]
    row = "{:<52} {:>9} {:>8} {:>8} {:>11} {:>9} {:>8}"
    out.append(row.format("drain: saver", "win x bat", "backlog", "drain s", "readings/s", "ms/round", "/broker"))
    for d in r["drains"]:
        ceiling = r["ceilings"]["broker"].get(str(d["batch"]), {}).get("readings_per_s")
        out.append(row.format(drain_label(d, r['settings']['batch_delay_ms']), f"{d['window']}x{d['batch']}", f"{d['backlog']:,}",
                              f"{d['drain_s']:.3f}", fmt_rate(d["readings_per_s"]), f"{d['ms_per_round']:.1f}",
                              str(ratio(d["readings_per_s"], ceiling))))
    out.append("")
    for b in r["ceilings"]["broker"].values():
        out.append(f"broker ceiling, batch {b['batch']:>3}: {fmt_rate(b['readings_per_s']):>11} readings/s "
                   f"({b['messages']} x {b['payload_bytes']} B, median of {len(b['runs_readings_per_s'])})")
    out.append("")
    for s in r["steadies"]:
        out.append(f"steady, {steady_label(s)} x {s['channels']} ch / {s['period_ms']} ms, window {s['window']} x "
                   f"batch {s['batch']}: produced {fmt_rate(s['produced_per_s'])}/s, stored "
                   f"{fmt_rate(s['stored_per_s'])}/s, watermark age p50/p95/max {s['lag_ms_p50']}/{s['lag_ms_p95']}/"
                   f"{s['lag_ms_max']} ms, behind at stop {s['behind_at_stop']:,}, caught up in {s['catch_up_s']} s, "
                   f"dropped {s['dropped']}, all stored {s['all_drained']}")
    ra = r["ratios"]
    out += ["", f"drain (fieldlink-gateway, {r['drain']['window']}x{r['drain']['batch']}) "
            f"{fmt_rate(r['drain']['readings_per_s'])} readings/s: / null-saver drain {ra['drain_over_null_saver']}, "
            f"/ broker ceiling {ra['drain_over_broker']}",
            f"steady (fieldlink-gateway) {fmt_rate(r['steady']['stored_per_s'])} readings/s: stored at stop / produced "
            f"{ra['steady_stored_over_produced']}, / broker ceiling {ra['steady_over_broker']}"]
    return "\n".join(out)


# --- main ------------------------------------------------------------------------------


def run_header():
    """What every results file starts with: when, how and where it ran."""
    return {"date_utc": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "command": " ".join(shlex.quote(a) for a in ["bench/run.py", *sys.argv[1:]]),
            "machine": machine_info()}


def write_outputs(paths, results, render_markdown):
    for out in paths:
        path = Path(out)
        path.write_text(render_markdown(results) if path.suffix == ".md" else json.dumps(results, indent=2) + "\n")
        log(f"wrote {path}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build-dir", default=str(ROOT / "build" / "bench"),
                        help="build folder (default: build/bench under the project root)")
    parser.add_argument("--no-build", action="store_true", help="use the programs already built in --build-dir")
    parser.add_argument("--out", action="append", default=[],
                        help="write the results to this file: .json or .md (repeatable)")
    parser.add_argument("--quick", action="store_true",
                        help="only the headline drain, its ceilings and the steady state (no sweep)")
    parser.add_argument("--backlog", type=int, default=100_000, help="readings in the drained backlog")
    parser.add_argument("--readers", type=int, default=4, help="readers in the steady-state run")
    parser.add_argument("--warmup", type=float, default=3, help="steady state: seconds before measuring")
    parser.add_argument("--steady-seconds", type=float, default=15, help="steady state: seconds measured")
    parser.add_argument("--batch-rows", type=int, default=1000, help="gateway group commit: readings")
    parser.add_argument("--batch-delay-ms", type=int, default=0, help="gateway group commit: least milliseconds between commits")
    parser.add_argument("--reader-args", default="",
                        help="extra reader options for every reader, {device} is replaced, e.g. "
                             "\"--ack-timeout 2000\"")
    parser.add_argument("--gateway-args", default="",
                        help="extra fieldlink-gateway options, e.g. \"--cache-kib 8192\" (not for the bench saver)")
    parser.add_argument("--keep", action="store_true", help="keep the work folders (logs, databases)")
    parser.add_argument("--loadgen", action="store_true",
                        help="instead of the drains: the many-devices figures with fieldlink-loadgen and the SQLite "
                             "ceiling (with --quick: shorter, without 10,000 devices)")
    parser.add_argument("--loadgen-devices", type=int, default=50,
                        help="--loadgen: devices in the max-rate and half-rate runs")
    parser.add_argument("--loadgen-window", type=int, default=8, help="--loadgen: batches in flight per device")
    parser.add_argument("--loadgen-rows", type=int, default=0,
                        help="--loadgen: readings in the max-rate runs and the SQLite ceiling (200,000; quick 60,000)")
    parser.add_argument("--loadgen-seconds", type=float, default=0,
                        help="--loadgen: seconds of the rate-limited runs (12; quick 5)")
    parser.add_argument("--growth", action="store_true",
                        help="instead of the drains: ingest rate and gateway RSS as the database grows")
    parser.add_argument("--growth-sizes", default="0,1000000,10000000",
                        help="--growth: rows in the database before each run (default 0,1000000,10000000; "
                             "the issue's full set adds 30000000, about 2.5 GB)")
    parser.add_argument("--growth-rows", type=int, default=400_000, help="--growth: readings per measured run")
    parser.add_argument("--growth-rounds", type=int, default=3,
                        help="--growth: runs at each size (the median is reported, each round beside it)")
    args = parser.parse_args()
    if args.growth_rounds < 1 or args.growth_rows < 1:
        parser.error("--growth-rounds and --growth-rows must be at least 1")

    if shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists():
        sys.exit("mosquitto is not installed (Debian: apt-get install mosquitto)")
    os.environ["PATH"] = os.environ.get("PATH", "") + ":/usr/sbin"
    if args.keep:
        os.environ["FIELDLINK_KEEP_TEST_DIR"] = "1"
    build_dir = Path(args.build_dir).resolve()
    tools = programs(build_dir) if args.no_build else build(build_dir, os.cpu_count() or 2)

    begun = time.monotonic()
    if args.growth or args.loadgen:
        if "loadgen" not in tools:
            sys.exit("this build has no fieldlink-loadgen: rebuild (drop --no-build)")
        results = run_header()
        if args.growth:
            results["growth"] = growth_suite(tools, args)
            text, render = growth_markdown(results), growth_markdown
        else:
            results["settings"] = {"batch_rows": args.batch_rows, "batch_delay_ms": args.batch_delay_ms}
            results["loadgen"] = loadgen_suite(tools, args)
            text, render = loadgen_table(results), loadgen_markdown
        results["elapsed_s"] = round(time.monotonic() - begun, 1)
        print(text)
        print(f"(benchmark time {results['elapsed_s']} s)")
        write_outputs(args.out, results, render)
        return

    results = run_header()
    results.update({
        "settings": {"backlog": args.backlog, "batch_rows": args.batch_rows, "batch_delay_ms": args.batch_delay_ms,
                     "reader_args": args.reader_args},
    })

    # Headline: the real gateway, then the null saver on the same load.
    full = args.backlog
    plan = [(GATEWAY, MAIN_WINDOW, MAIN_BATCH, full), (NULL, MAIN_WINDOW, MAIN_BATCH, full)]
    if not args.quick:
        # What the drain depends on: readings in flight (window x batch) and the round trip. The
        # reader's defaults drain so slowly that a fifth of the backlog gives the same rate.
        small = max(1, full // 5)
        plan += [(GATEWAY, READER_DEFAULT_WINDOW, READER_DEFAULT_BATCH, small), (GATEWAY, 4, 256, full),
                 (GATEWAY, 16, 64, full), (GATEWAY, 16, 512, full),
                 # The reader's flash spool (fdatasync after every write) instead of RAM.
                 (GATEWAY, MAIN_WINDOW, MAIN_BATCH, full, "flash"),
                 # What-if: Nagle's algorithm off on the saver's broker link.
                 (SQLITE_NODELAY, MAIN_WINDOW, MAIN_BATCH, full),
                 (SQLITE_NODELAY, MAIN_WINDOW, MAIN_BATCH, full, "flash"),
                 (SQLITE_NODELAY, READER_DEFAULT_WINDOW, READER_DEFAULT_BATCH, small),
                 # ...and a group commit that closes as soon as the queue is empty.
                 (SQLITE_NODELAY, READER_DEFAULT_WINDOW, READER_DEFAULT_BATCH, small, "ram", 0),
                 (SQLITE_NODELAY, 16, 512, full), (NULL_NODELAY, MAIN_WINDOW, MAIN_BATCH, full)]
    batches = sorted({entry[2] for entry in plan})
    log(f"broker ceilings for batch sizes {batches}")
    results["ceilings"] = {"broker": {str(b): broker_ceiling(tools, args, b) for b in batches}}
    results["drains"] = [drain(tools, args, *entry) for entry in plan]
    results["drain"] = results["drains"][0]
    results["ceilings"]["null_saver_drain"] = results["drains"][1]
    results["steadies"] = [steady(tools, args, MAIN_WINDOW, MAIN_BATCH)]
    if not args.quick:
        results["steadies"].append(steady(tools, args, MAIN_WINDOW, MAIN_BATCH, SQLITE_NODELAY))
    results["steady"] = results["steadies"][0]

    main_rate = results["drain"]["readings_per_s"]
    null_rate = results["ceilings"]["null_saver_drain"]["readings_per_s"]
    broker_rate = results["ceilings"]["broker"][str(MAIN_BATCH)]["readings_per_s"]
    steady_rate = results["steady"]["stored_per_s"]
    results["ratios"] = {
        "drain_over_null_saver": ratio(main_rate, null_rate), "drain_over_broker": ratio(main_rate, broker_rate),
        # Both counted from the readers' start to the stop: the share stored as it was produced.
        "steady_stored_over_produced": ratio(results["steady"]["stored_at_stop"], results["steady"]["produced"]),
        "steady_over_broker": ratio(steady_rate, broker_rate),
    }
    results["elapsed_s"] = round(time.monotonic() - begun, 1)

    print(table(results))
    print(f"\n(benchmark time {results['elapsed_s']} s)")
    write_outputs(args.out, results, markdown)


if __name__ == "__main__":
    main()
