#!/usr/bin/env python3
"""fieldlink forwarder benchmark (issue 8): a backlog in the gateway's SQLite forwarded to a
local Mosquitto and to a local PostgreSQL, each next to a ceiling measured in the same run, and
the saver's ingest rate while the forwarder drains (docs/benchmarks.md, "Forwarding").

    bench/run_forward.py --out forward-results.json --out forward-results.md

Builds what it needs (Release) unless --no-build, then starts a private Mosquitto
(tests/integration/forward_harness.py's UpstreamBroker) and a private PostgreSQL
(tests/integration/pg_harness.py) on free ports of 127.0.0.1 in a temporary folder, runs
bench/bench_forward.cpp's modes and the real gateway, stops everything and prints a table.
Python 3 standard library only.
"""

import argparse
import datetime as dt
import json
import math
import os
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
sys.dont_write_bytecode = True  # leave no __pycache__ in tests/ or bench/
sys.path.insert(0, str(ROOT / "tests" / "integration"))
sys.path.insert(0, str(ROOT / "bench"))
import forward_harness as fh  # noqa: E402
import harness as h  # noqa: E402
import netproxy  # noqa: E402
import pg_harness  # noqa: E402
import run as saver_bench  # noqa: E402  (bench/run.py: reader helpers, machine info)

GATEWAY_ID = "gw-bench"
COPY_TABLE = "bench_copy_ceiling"
log = saver_bench.log


# --- build -----------------------------------------------------------------------------------


def build(build_dir, jobs):
    configure = ["cmake", "-S", str(ROOT), "-B", str(build_dir), "-DCMAKE_BUILD_TYPE=Release",
                 "-DFIELDLINK_BUILD_TESTS=OFF", "-DFIELDLINK_BUILD_BENCH=ON"]
    if not (build_dir / "CMakeCache.txt").exists() and shutil.which("ninja"):
        configure += ["-G", "Ninja"]
    log(f"configuring {build_dir} (Release)")
    subprocess.run(configure, check=True, stdout=subprocess.DEVNULL)
    log("building fieldlink-bench-forward-all (gateway, reader, fieldlink-bench-forward)")
    subprocess.run(["cmake", "--build", str(build_dir), "--target", "fieldlink-bench-forward-all", "-j", str(jobs)],
                   check=True)
    return saver_bench.programs(build_dir)


def bench(tools, *argv, timeout=900):
    """Runs fieldlink-bench-forward; returns its JSON line."""
    argv = [tools["forward"], *[str(a) for a in argv]]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise AssertionError(f"{shlex.join(argv)} exited {done.returncode}:\n{done.stdout}\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def fresh_db(base, wd, name):
    path = wd / f"{name}.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(base, path)
    return path


def median_of(runs, key="readings_per_s"):
    return statistics.median(r[key] for r in runs)


def ratio(a, b):
    return round(a / b, 3) if a and b else None


# --- MQTT -------------------------------------------------------------------------------------


def mqtt_section(tools, args, wd, base):
    broker = fh.UpstreamBroker(wd).start()
    common = ["--uri", f"tcp://127.0.0.1:{broker.port}", "--batch-rows", args.batch_rows, "--window", args.window,
              "--max-inflight", args.max_inflight, "--gateway-id", GATEWAY_ID]
    results = {}
    try:
        for level in (0, args.zstd):
            forward, ceiling, serial = [], [], []
            for r in range(args.rounds):
                log(f"mqtt, zstd {level}, round {r + 1}/{args.rounds}: Paho ceiling")
                ceiling.append(bench(tools, "paho-ceiling", "--db", base, *common, "--zstd", level))
                log(f"  {ceiling[-1]['readings_per_s']:,.0f} readings/s; forwarder")
                db = fresh_db(base, wd, "mqtt")
                forward.append(bench(tools, "forward", "--upstream", "mqtt", "--db", db, *common, "--zstd", level))
                log(f"  {forward[-1]['readings_per_s']:,.0f} readings/s")
                if level == 0:
                    db = fresh_db(base, wd, "mqtt")
                    serial.append(bench(tools, "forward", "--upstream", "mqtt", "--db", db, *common, "--zstd", level,
                                        "--read-ahead", 0))
                    log(f"  {serial[-1]['readings_per_s']:,.0f} readings/s without read-ahead")
            log(f"mqtt, zstd {level}: reading and encoding alone (no network)")
            encode = bench(tools, "read-encode", "--db", base, "--batch-rows", args.batch_rows, "--zstd", level)
            results[f"zstd{level}"] = {"zstd_level": level, "forward": forward, "ceiling": ceiling,
                                       "read_encode": encode, "forward_no_read_ahead": serial}
    finally:
        broker.stop()
    return results


# --- PostgreSQL -----------------------------------------------------------------------------------


def pg_section(tools, server, args, wd, base):
    forward, bulk, per_chunk, serial = [], [], [], []
    for r in range(args.rounds):
        log(f"postgres, round {r + 1}/{args.rounds}: COPY ceiling (one transaction)")
        bulk.append(bench(tools, "copy-ceiling", "--db", base, "--conninfo", server.conninfo, "--table", COPY_TABLE,
                          "--batch-rows", args.batch_rows, "--gateway-id", GATEWAY_ID))
        log(f"  {bulk[-1]['readings_per_s']:,.0f} readings/s; COPY, one transaction per {args.batch_rows} rows")
        per_chunk.append(bench(tools, "copy-ceiling", "--db", base, "--conninfo", server.conninfo, "--table",
                               COPY_TABLE, "--batch-rows", args.batch_rows, "--gateway-id", GATEWAY_ID,
                               "--rows-per-transaction", args.batch_rows))
        log(f"  {per_chunk[-1]['readings_per_s']:,.0f} readings/s; forwarder")
        server.query(f"DROP TABLE IF EXISTS {COPY_TABLE}; CHECKPOINT")
        for read_ahead, runs in ((None, forward), (0, serial)):
            server.query("DROP TABLE IF EXISTS fieldlink_readings; CHECKPOINT")
            db = fresh_db(base, wd, "postgres")
            extra = [] if read_ahead is None else ["--read-ahead", read_ahead]
            run = bench(tools, "forward", "--upstream", "postgres", "--db", db, "--conninfo", server.conninfo,
                        "--batch-rows", args.batch_rows, "--gateway-id", GATEWAY_ID, *extra)
            rows, keys = server.rows(
                "SELECT count(*), count(DISTINCT (device, incarnation, seq)) FROM fieldlink_readings")[0]
            if int(rows) != run["rows"] or int(keys) != run["rows"]:
                raise AssertionError(f"fieldlink_readings has {rows} rows, {keys} keys; expected {run['rows']}")
            run["table_rows"] = int(rows)
            runs.append(run)
            log(f"  {run['readings_per_s']:,.0f} readings/s ({rows} rows in the table)"
                f"{'' if read_ahead is None else ' without read-ahead'}")
    return {"forward": forward, "ceiling": bulk, "copy_per_chunk": per_chunk, "forward_no_read_ahead": serial}


# --- ingest while the forwarder drains ----------------------------------------------------------------


def ingest(tools, args, wd, base, upstream, pg_server, upstream_broker):
    """fieldlink-gateway with the 1M-row database (and an [[upstream]] unless None): one reader's
    backlog drained into it while the forwarder drains its own backlog; the reader's drain rate."""
    what = upstream or "none"
    log(f"ingest: one reader drains {args.ingest_backlog:,} readings into fieldlink-gateway, upstream {what}")
    run_dir = wd / f"ingest-{what}-{time.monotonic_ns()}"
    run_dir.mkdir()
    db = fresh_db(base, run_dir, "gateway")
    broker = h.Mosquitto(run_dir).start()
    upstreams = []
    if upstream == "mqtt":
        upstreams = [fh.mqtt_upstream("up", upstream_broker.port)]
    elif upstream == "postgres":
        pg_server.query("DROP TABLE IF EXISTS fieldlink_readings; CHECKPOINT")
        upstreams = [fh.postgres_upstream("up", pg_server)]
    window, batch = saver_bench.MAIN_WINDOW, saver_bench.MAIN_BATCH
    gateway = reader = None
    try:
        with netproxy.Proxy(broker.port) as proxy:
            proxy.set_mode(netproxy.DROP)
            reader = h.Process("reader", saver_bench.reader_argv(
                tools, args, "bench-ingest", proxy.port, window, batch,
                ["--channels", saver_bench.FAST_CHANNELS, "--period", saver_bench.FAST_PERIOD_MS,
                 "--buffer", args.ingest_backlog, "--full-policy", "refuse", "--reconnect-min", "5",
                 "--reconnect-max", "20", "--drain-timeout", "300"]), run_dir).start()
            h.wait_for(lambda: "store full" in reader.log() or not reader.running(), 120,
                       f"a backlog of {args.ingest_backlog} readings", interval=0.1)
            reader.signal(signal.SIGTERM)  # stop sampling; drain once the link is up
            h.wait_for(lambda: "stopping:" in reader.log() or not reader.running(), 10, "the reader to stop")
            conf = run_dir / "gateway.toml"
            conf.write_text(fh.gateway_toml(broker.port, db, upstreams, gateway_id=GATEWAY_ID, stats_interval_s=0))
            gateway = h.Process("gateway", [tools["gateway"], "--config", conf], run_dir).start()
            h.wait_for(lambda: "subscribed to" in gateway.log() or not gateway.running(), 30, "the gateway to subscribe")
            if upstreams:
                # The forwarder has started to drain its 1M-row backlog.
                h.wait_for(lambda: (fh.cursor(db, "up") or {}).get("forwarded_rows", 0) > 0
                           or not gateway.running(), 60, "the forwarder's first confirmed chunk", interval=0.02)
            if not gateway.running():
                raise AssertionError(f"gateway exited:\n{gateway.log()[-4000:]}")
            before = (fh.cursor(db, "up") or {}).get("forwarded_rows", 0) if upstreams else 0
            link_up = time.monotonic()
            proxy.set_mode(netproxy.PASS)
            code = reader.proc.wait()
            wall_s = time.monotonic() - link_up
            after = (fh.cursor(db, "up") or {}).get("forwarded_rows", 0) if upstreams else 0
        summary = saver_bench.summary_of(reader)
        if code != 0:
            raise AssertionError(f"reader exit {code}: {summary}")
        lines = reader.log().splitlines()
        ready = [saver_bench.log_time(l) for l in lines if "subscribed to commit acks; publishing" in l]
        last = saver_bench.log_time(lines[-1]) if lines else None
        drain_s = max(last - ready[-1] if ready and last and last > ready[-1] else wall_s, 0.001)
        produced = int(summary["produced"])
        result = {"upstream": what, "backlog": produced, "drain_s": round(drain_s, 3),
                  "readings_per_s": round(produced / drain_s), "window": window, "batch": batch,
                  "forwarded_before": before, "forwarded_after": after, "gateway_rows_before": args.rows}
        if upstreams:
            # Still draining when the reader's last ack came: the whole ingest ran beside it.
            result["forwarder_busy_throughout"] = after < args.rows
            result["forwarded_during_ingest"] = after - before
        log(f"  {result['readings_per_s']:,} readings/s ({drain_s:.3f} s); forwarder confirmed {before:,} -> {after:,}")
        return result
    finally:
        for process in (reader, gateway, broker):
            if process:
                process.stop()


# --- report ----------------------------------------------------------------------------------------


def after_connect(runs):
    """The forwarder's median rate counted from its connection (the ceilings start connected)
    instead of from start(), which includes opening SQLite, counting the backlog and connecting."""
    return statistics.median(x["rows"] / (x["seconds"] - x["connected_after_s"]) for x in runs)


def summarise(r):
    s = {}
    for key, m in r["mqtt"].items():
        fwd, ceil = median_of(m["forward"]), median_of(m["ceiling"])
        f0 = m["forward"][0]
        after = after_connect(m["forward"])
        s[f"mqtt_{key}"] = {
            "forward_readings_per_s": round(fwd), "ceiling_readings_per_s": round(ceil), "ratio": ratio(fwd, ceil),
            "forward_after_connect_readings_per_s": round(after), "ratio_after_connect": ratio(after, ceil),
            "payload_bytes_per_reading": round(statistics.median(x["payload_bytes"] / x["rows"] for x in m["forward"]), 2),
            "wire_bytes_per_reading": round(statistics.median(x["wire_bytes"] / x["rows"] for x in m["forward"]), 2),
            "ceiling_wire_bytes_per_reading": round(
                statistics.median(x["wire_bytes"] / x["rows"] for x in m["ceiling"]), 2),
            "messages": f0["batches"], "zstd_level": m["zstd_level"],
            "read_encode_readings_per_s": m["read_encode"]["readings_per_s"],
            "read_per_s": m["read_encode"]["read_per_s"], "encode_per_s": m["read_encode"]["encode_per_s"]}
        if m.get("forward_no_read_ahead"):
            serial = median_of(m["forward_no_read_ahead"])
            s[f"mqtt_{key}"].update(no_read_ahead_readings_per_s=round(serial), no_read_ahead_ratio=ratio(serial, ceil))
    p = r["postgres"]
    fwd, ceil, chunked = median_of(p["forward"]), median_of(p["ceiling"]), median_of(p["copy_per_chunk"])
    after = after_connect(p["forward"])
    s["postgres"] = {
        "forward_readings_per_s": round(fwd), "ceiling_readings_per_s": round(ceil), "ratio": ratio(fwd, ceil),
        "forward_after_connect_readings_per_s": round(after), "ratio_after_connect": ratio(after, ceil),
        "copy_per_chunk_readings_per_s": round(chunked), "ratio_to_copy_per_chunk": ratio(fwd, chunked),
        "payload_bytes_per_reading": round(statistics.median(x["payload_bytes"] / x["rows"] for x in p["forward"]), 2),
        "wire_bytes_per_reading": round(statistics.median(x["wire_bytes"] / x["rows"] for x in p["forward"]), 2)}
    if p.get("forward_no_read_ahead"):
        serial = median_of(p["forward_no_read_ahead"])
        s["postgres"].update(no_read_ahead_readings_per_s=round(serial), no_read_ahead_ratio=ratio(serial, ceil))
    if r.get("ingest"):
        base = r["ingest"]["none"]["readings_per_s"]
        s["ingest"] = {k: {"readings_per_s": v["readings_per_s"], "ratio": ratio(v["readings_per_s"], base),
                           "forwarder_busy_throughout": v.get("forwarder_busy_throughout")}
                       for k, v in r["ingest"].items()}
    return s


def rates(runs):
    return ", ".join(f"{x['readings_per_s']:,.0f}" for x in runs)


def report_rows(r):
    """(figure, readings/s, ratio, target, met, runs) for the table."""
    s = r["summary"]
    rows = []
    z = r["settings"]["zstd"]
    for key, label in (("mqtt_zstd0", "MQTT, no compression"), (f"mqtt_zstd{z}", f"MQTT, zstd level {z}")):
        m = s[key]
        runs = r["mqtt"][key.split("_")[1]]
        rows.append((f"forwarder -> Mosquitto, {label} (from connect: {m['forward_after_connect_readings_per_s']:,}/s, "
                     f"{m['ratio_after_connect']})", m["forward_readings_per_s"], m["ratio"], ">= 0.9",
                     m["ratio"] is not None and m["ratio"] >= 0.9, rates(runs["forward"])))
        if "no_read_ahead_readings_per_s" in m:
            rows.append(("reference: the same forwarder without read-ahead (read_ahead_chunks 0)",
                         m["no_read_ahead_readings_per_s"], m["no_read_ahead_ratio"], "", None,
                         rates(runs["forward_no_read_ahead"])))
        rows.append((f"ceiling: plain Paho publisher, same chunks, {label}", m["ceiling_readings_per_s"], 1, "", None,
                     rates(runs["ceiling"])))
        rows.append((f"reference: SQLite read + encode alone, one thread, no network, {label} (read "
                     f"{m['read_per_s']:,.0f}/s, encode {m['encode_per_s']:,.0f}/s)", round(m["read_encode_readings_per_s"]),
                     ratio(m["read_encode_readings_per_s"], m["ceiling_readings_per_s"]), "", None, ""))
    p = s["postgres"]
    rows.append((f"forwarder -> PostgreSQL (from connect: {p['forward_after_connect_readings_per_s']:,}/s, "
                 f"{p['ratio_after_connect']})", p["forward_readings_per_s"],
                 p["ratio"], ">= 0.8", p["ratio"] is not None and p["ratio"] >= 0.8, rates(r["postgres"]["forward"])))
    if "no_read_ahead_readings_per_s" in p:
        rows.append(("reference: the same forwarder without read-ahead (read_ahead_chunks 0)",
                     p["no_read_ahead_readings_per_s"], p["no_read_ahead_ratio"], "", None,
                     rates(r["postgres"]["forward_no_read_ahead"])))
    rows.append(("ceiling: plain binary COPY, one transaction", p["ceiling_readings_per_s"], 1, "", None,
                 rates(r["postgres"]["ceiling"])))
    rows.append((f"reference: plain binary COPY, one transaction per {r['settings']['batch_rows']} rows",
                 p["copy_per_chunk_readings_per_s"], ratio(p["copy_per_chunk_readings_per_s"],
                                                           p["ceiling_readings_per_s"]), "", None,
                 rates(r["postgres"]["copy_per_chunk"])))
    if "ingest" in s:
        for key, label in (("none", "no upstream (ceiling)"), ("mqtt", "forwarder draining to Mosquitto"),
                           ("postgres", "forwarder draining to PostgreSQL")):
            if key not in s["ingest"]:
                continue
            i = s["ingest"][key]
            busy = "" if key == "none" else ("" if i["forwarder_busy_throughout"] else " (forwarder finished early!)")
            rows.append((f"ingest into fieldlink-gateway, {label}{busy}", round(i["readings_per_s"]),
                         1 if key == "none" else i["ratio"], "" if key == "none" else ">= 0.5",
                         None if key == "none" else i["ratio"] >= 0.5, rates(r["ingest"][key]["runs"])))
    return rows


def bytes_rows(r):
    s = r["summary"]
    z = r["settings"]["zstd"]
    out = []
    for key, label in (("mqtt_zstd0", "MQTT, binary, no compression"), (f"mqtt_zstd{z}", f"MQTT, binary, zstd {z}")):
        m = s[key]
        out.append((label, m["payload_bytes_per_reading"], m["wire_bytes_per_reading"], m["messages"]))
    p = s["postgres"]
    out.append(("PostgreSQL, binary COPY (no compression)", p["payload_bytes_per_reading"],
                p["wire_bytes_per_reading"], r["postgres"]["forward"][0]["batches"]))
    return out


def markdown(r):
    m = r["machine"]
    st = r["settings"]
    lines = ["# fieldlink forwarder benchmark", "",
             f"- date: {r['date_utc']}", f"- command: `{r['command']}`",
             f"- machine: {m['cpus']} CPUs ({m['cpu_model']}), kernel {m['kernel']}, "
             f"load average at start {m['load_average_at_start']}",
             f"- Mosquitto {m['mosquitto']}, Paho C {m['paho_c']}, SQLite {m['sqlite']}, PostgreSQL {r['postgresql']}, "
             f"commit {m['git_commit']}{' (uncommitted changes)' if m['git_dirty'] else ''}",
             f"- backlog {st['rows']:,} readings of {st['devices']} devices; forwarder batch_rows {st['batch_rows']}, "
             f"MQTT window {st['window']} chunks, max_inflight {st['max_inflight']}; PostgreSQL window "
             f"{r['postgres']['forward'][0]['window']} chunks; {st['rounds']} round(s), median shown", "",
             "| figure | readings/s | / ceiling | target | met | rounds |", "|---|---:|---:|---|---|---|"]
    for label, rate, rat, target, met, runs in report_rows(r):
        lines.append(f"| {label} | {rate:,} | {rat} | {target} | {'' if met is None else ('yes' if met else 'no')} | "
                     f"{runs} |")
    lines += ["", "| bytes per reading | payload | on the wire (TCP payload, client to server) | messages / transactions |",
              "|---|---:|---:|---:|"]
    for label, payload, wire, count in bytes_rows(r):
        lines.append(f"| {label} | {payload} | {wire} | {count:,} |")
    return "\n".join(lines) + "\n"


def table(r):
    out = [f"fieldlink forwarder benchmark, {r['date_utc']}, {r['machine']['cpus']} CPUs, "
           f"load {r['machine']['load_average_at_start']}, backlog {r['settings']['rows']:,}", ""]
    row = "{:<78} {:>11} {:>9} {:>7} {:>4}"
    out.append(row.format("figure", "readings/s", "/ceiling", "target", "met"))
    for label, rate, rat, target, met, _ in report_rows(r):
        out.append(row.format(label, f"{rate:,}", str(rat), target, "" if met is None else ("yes" if met else "no")))
    out += ["", "{:<44} {:>10} {:>10} {:>10}".format("bytes per reading", "payload", "wire", "messages")]
    for label, payload, wire, count in bytes_rows(r):
        out.append(f"{label:<44} {payload:>10} {wire:>10} {count:>10,}")
    return "\n".join(out)


# --- main ------------------------------------------------------------------------------------------


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build-dir", default=str(ROOT / "build" / "bench"), help="build folder (default build/bench)")
    parser.add_argument("--no-build", action="store_true", help="use the programs already built in --build-dir")
    parser.add_argument("--out", action="append", default=[], help="write results to this .json or .md (repeatable)")
    parser.add_argument("--rows", type=int, default=1_000_000, help="readings in the forwarder's backlog")
    parser.add_argument("--devices", type=int, default=4, help="devices the backlog is interleaved from")
    parser.add_argument("--device-batch", type=int, default=256, help="readings per device batch in the backlog")
    parser.add_argument("--batch-rows", type=int, default=1000, help="forwarder batch_rows (the gateway's default)")
    parser.add_argument("--window", type=int, default=4, help="MQTT upstream window (the default)")
    parser.add_argument("--max-inflight", type=int, default=64, help="MQTT upstream max_inflight (the default)")
    parser.add_argument("--zstd", type=int, default=3, help="zstd level of the compressed MQTT run")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each forward/ceiling pair (median counts)")
    parser.add_argument("--ingest-backlog", type=int, default=100_000, help="readings the reader drains while "
                        "the forwarder drains (0: skip the ingest part)")
    parser.add_argument("--reader-args", default="", help="extra options for the reader ({device} is replaced)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs, databases)")
    parser.add_argument("--report", metavar="JSON", help="only print (and --out) the report of an earlier run's JSON")
    args = parser.parse_args()
    if args.report:
        results = json.loads(Path(args.report).read_text())
        results["summary"] = summarise(results)
        print(table(results))
        for out in args.out:
            path = Path(out)
            path.write_text(markdown(results) if path.suffix == ".md" else json.dumps(results, indent=2) + "\n")
        return

    if missing := pg_harness.missing_binary():
        sys.exit(f"PostgreSQL is not installed ({missing}; Debian: apt-get install postgresql-15)")
    if shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists():
        sys.exit("mosquitto is not installed (Debian: apt-get install mosquitto)")
    os.environ["PATH"] = os.environ.get("PATH", "") + ":/usr/sbin"
    if args.keep:
        os.environ["FIELDLINK_KEEP_TEST_DIR"] = "1"
    build_dir = Path(args.build_dir).resolve()
    tools = saver_bench.programs(build_dir) if args.no_build else build(build_dir, os.cpu_count() or 2)
    if not tools.get("forward"):
        sys.exit("this build has no fieldlink-bench-forward (it needs both upstream kinds)")

    begun = time.monotonic()
    results = {
        "date_utc": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": shlex.join(["bench/run_forward.py", *sys.argv[1:]]),
        "machine": saver_bench.machine_info(),
        "settings": {k: getattr(args, k) for k in ("rows", "devices", "device_batch", "batch_rows", "window",
                                                    "max_inflight", "zstd", "rounds", "ingest_backlog")},
    }
    with h.workdir("bench-forward") as wd:
        log(f"work folder {wd}")
        base = wd / "backlog.db"
        results["make_db"] = bench(tools, "make-db", "--db", base, "--rows", args.rows, "--devices", args.devices,
                                   "--device-batch", args.device_batch)
        log(f"backlog of {args.rows:,} readings written in {results['make_db']['seconds']:.1f} s")
        results["mqtt"] = mqtt_section(tools, args, wd, base)
        server = pg_harness.PostgresServer(wd).start()
        try:
            results["postgresql"] = server.query("SHOW server_version")
            results["postgres"] = pg_section(tools, server, args, wd, base)
            if args.ingest_backlog > 0:
                upstream_broker = fh.UpstreamBroker(wd / "ingest-upstream").start()
                try:
                    runs = {"none": [], "mqtt": [], "postgres": []}
                    for r in range(args.rounds):
                        log(f"ingest round {r + 1}/{args.rounds}")
                        for u in (None, "mqtt", "postgres"):
                            runs[u or "none"].append(ingest(tools, args, wd, base, u, server, upstream_broker))
                    results["ingest"] = {
                        k: {"readings_per_s": statistics.median(x["readings_per_s"] for x in v), "runs": v,
                            "forwarder_busy_throughout": all(x.get("forwarder_busy_throughout", True) for x in v)}
                        for k, v in runs.items()}
                finally:
                    upstream_broker.stop()
        finally:
            server.stop()
    results["summary"] = summarise(results)
    results["elapsed_s"] = round(time.monotonic() - begun, 1)
    print(table(results))
    print(f"\n(benchmark time {results['elapsed_s']} s)")
    for out in args.out:
        path = Path(out)
        path.write_text(markdown(results) if path.suffix == ".md" else json.dumps(results, indent=2) + "\n")
        log(f"wrote {path}")


if __name__ == "__main__":
    main()
