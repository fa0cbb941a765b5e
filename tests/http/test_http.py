"""The gateway's HTTP side with real processes: a private Mosquitto, the gateway
with [http] on a free 127.0.0.1 port, two readers (tests/integration/harness.py).

Metrics:    /metrics parses with prometheus_client, follows the naming rules, and its
            counters equal what the database holds once the readers have drained.
Healthz:    200 while healthy, 503 naming the broker check while Mosquitto is down,
            200 again once it is back.
StatusPage: the page in headless Chromium lists every device with its stored count
            and draws the chart, and makes no request to any host but the gateway.
Startup:    --log-format json gives one JSON object per line; a port in use stops the start.
"""

import contextlib
import html.parser
import json
import os
import re
import shutil
import socket
import subprocess
import unittest
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import harness as h
from prometheus_client.parser import text_string_to_metric_families

DEVICES = ["north", "south"]
READER_ARGS = ["--channels", "2", "--period", "40", "--batch-size", "8", "--window", "4", "--duration", "3",
               "--telemetry-interval", "1", "--drain-timeout", "30"]
CHROMIUM = os.environ.get("FIELDLINK_CHROMIUM", "")
ARTIFACTS = Path(os.environ.get("FIELDLINK_TEST_ARTIFACTS", "artifacts"))


def get(url, timeout=10):
    """(status, headers, body text) of a GET; HTTP errors are answers, not exceptions."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.headers, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode()


class Site:
    """Mosquitto, a gateway serving HTTP, and the readers' runs; stopped on exit."""

    def __init__(self, test, prefix, upstream=False):
        self.test = test
        self._stack = contextlib.ExitStack()
        self.wd = self._stack.enter_context(h.workdir(prefix))
        self.broker = h.Mosquitto(self.wd).start()
        self._stack.callback(lambda: self.broker.stop())
        self.db = self.wd / "fieldlink.db"
        self.http_port = h.free_port()
        extra = ["--http-enable", "true", "--http-port", self.http_port]
        if upstream:
            # A second Mosquitto as the [[upstream]] named "central".
            (self.wd / "upstream").mkdir()
            self.upstream = h.Mosquitto(self.wd / "upstream").start()
            self._stack.callback(self.upstream.stop)
            config = self.wd / "gateway.toml"
            config.write_text(f'[[upstream]]\nname = "central"\nkind = "mqtt"\nuri = "{self.upstream.uri}"\n')
            extra += ["--config", config]
        self.gateway = h.Gateway(self.wd, self.broker.port, self.db, extra).start()
        self._stack.callback(self.gateway.stop)
        self.base = f"http://127.0.0.1:{self.http_port}"
        h.wait_for(lambda: h.port_open(self.http_port) or not self.gateway.running(), 20, "the gateway's HTTP port")
        test.assertTrue(self.gateway.running(), self.gateway.log())
        h.wait_for(lambda: "subscribed" in self.gateway.log().lower(), 20, "the gateway to subscribe")

    def run_readers(self):
        readers = [h.Reader(self.wd, d, self.broker.port, READER_ARGS).start() for d in DEVICES]
        for r in readers:
            self._stack.callback(r.stop)
        for r in readers:
            self.test.assertEqual(r.wait(timeout=90), 0, f"{r.name} did not drain:\n{r.log()[-3000:]}")
        return readers

    def publish(self, topic, payload):
        subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(self.broker.port), "-q", "1", "-t", topic,
                        "-m", payload], check=True, timeout=20)

    def close(self):
        # Stopped first, so that a sanitizer's report or a failed shutdown fails the test.
        code = self.gateway.stop()
        self._stack.close()
        self.test.assertEqual(code, 0, f"the gateway exited {code}:\n{self.gateway.log()[-3000:]}")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def scrape(site):
    status, headers, text = get(site.base + "/metrics")
    assert status == 200, (status, text)
    return headers, text, list(text_string_to_metric_families(text))


def samples(families):
    """{(sample name, frozenset(labels)): value}"""
    return {(s.name, frozenset(s.labels.items())): s.value for f in families for s in f.samples}


# What must be there, with its type (prometheus_client names a counter family without _total).
EXPECTED_FAMILIES = {
    "fieldlink_build_info": "gauge",
    "fieldlink_messages_received": "counter",
    "fieldlink_readings_stored": "counter",
    "fieldlink_readings_duplicate": "counter",
    "fieldlink_messages_malformed": "counter",
    "fieldlink_dead_letters": "counter",
    "fieldlink_commits": "counter",
    "fieldlink_commit_duration_seconds": "histogram",
    "fieldlink_ack_latency_seconds": "histogram",
    "fieldlink_queue_depth": "gauge",
    "fieldlink_broker_connected": "gauge",
    "fieldlink_device_readings": "gauge",
    "fieldlink_device_watermark_age_seconds": "gauge",
    "fieldlink_device_spool_readings": "gauge",
    "fieldlink_device_readings_dropped": "counter",
    "fieldlink_database_bytes": "gauge",
    "fieldlink_disk_free_bytes": "gauge",
    "fieldlink_health_check_ok": "gauge",
    "fieldlink_upstream_connected": "gauge",
    "fieldlink_upstream_lag_rows": "gauge",
    "fieldlink_upstream_lag_seconds": "gauge",
    "fieldlink_upstream_forwarded_readings": "counter",
}


class Metrics(unittest.TestCase):
    def test_exposition_parses_follows_the_rules_and_counts_what_the_database_holds(self):
        with Site(self, "http-metrics", upstream=True) as site:
            site.run_readers()
            # One malformed message: counted by error and kept as a dead letter.
            site.publish(f"fieldlink/v1/{DEVICES[0]}/up", "not a batch")

            def db_counts():
                readings = h.query(site.db, "SELECT COUNT(*) FROM readings")[0][0]
                dead = h.query(site.db, "SELECT COUNT(*) FROM dead_letters")[0][0]
                telemetry = h.query(site.db, "SELECT COUNT(*) FROM device_health")[0][0]
                per_device = dict(h.query(site.db, "SELECT device, COUNT(*) FROM readings GROUP BY device"))
                return readings, dead, telemetry, per_device

            def settled():
                # Telemetry and the last statuses may still be on their way: compare until equal.
                _, _, families = scrape(site)
                v = samples(families)
                readings, dead, telemetry, per_device = db_counts()
                central = frozenset({("upstream", "central")})
                got = (v.get(("fieldlink_readings_stored_total", frozenset())),
                       v.get(("fieldlink_upstream_forwarded_readings_total", central)),
                       v.get(("fieldlink_upstream_lag_rows", central)),
                       v.get(("fieldlink_dead_letters_total", frozenset())),
                       v.get(("fieldlink_telemetry_messages_total", frozenset())),
                       {d: v.get(("fieldlink_device_readings", frozenset({("device", d)}))) for d in per_device})
                want = (readings, readings, 0, dead, telemetry, per_device)
                return (got, families) if got == want and dead == 1 else None

            try:
                (got, families) = h.wait_for(settled, 30, "/metrics to equal the database's counts", interval=0.3)
            except AssertionError:
                self.fail(f"/metrics never matched the database {db_counts()}:\n{scrape(site)[1]}")
            readings, dead, telemetry, per_device = db_counts()
            self.assertEqual(sorted(per_device), DEVICES)
            self.assertGreater(readings, 100, "too few readings to mean anything")
            self.assertGreater(telemetry, 0, "no telemetry arrived")

            headers, text, families = scrape(site)
            self.assertTrue(headers["Content-Type"].startswith("text/plain; version=0.0.4"), headers["Content-Type"])
            types = {f.name: f.type for f in families}
            for name, kind in EXPECTED_FAMILIES.items():
                self.assertEqual(types.get(name), kind, f"{name} missing or of another type")
            v = samples(families)
            for f in families:
                self.assertTrue(f.name.startswith("fieldlink_"), f.name)
                self.assertNotRegex(f.name, r"_(ms|milliseconds|kb|mb|kib|mib|percent)($|_)", "not a base unit")
                for s in f.samples:
                    if f.type == "counter":
                        self.assertTrue(s.name.endswith("_total"), f"counter sample {s.name} without _total")
                    else:
                        self.assertFalse(s.name.endswith("_total"), f"{f.type} {s.name} named like a counter")
            # The raw text too: every counter's TYPE line names the _total name.
            for m in re.finditer(r"(?m)^# TYPE (\S+) counter$", text):
                self.assertTrue(m.group(1).endswith("_total"), m.group(0))

            build = [s for f in families if f.name == "fieldlink_build_info" for s in f.samples]
            self.assertEqual(len(build), 1)
            self.assertEqual(build[0].value, 1)
            self.assertRegex(build[0].labels.get("version", ""), r"^\d+\.\d+\.\d+")

            malformed = {s.labels["error"]: s.value for f in families if f.name == "fieldlink_messages_malformed"
                         for s in f.samples}
            (error,), = h.query(site.db, "SELECT error FROM dead_letters")
            self.assertEqual(malformed, {error: 1})
            self.assertEqual(v[("fieldlink_dead_letters_stored", frozenset({("error", error)}))], 1)
            batches = v[("fieldlink_batches_committed_total", frozenset())]
            self.assertGreater(batches, 0)
            self.assertGreaterEqual(v[("fieldlink_messages_received_total", frozenset())], batches + telemetry + 1)
            self.assertGreater(v[("fieldlink_commits_total", frozenset())], 0)
            self.assertEqual(v[("fieldlink_broker_connected", frozenset())], 1)
            self.assertEqual(v[("fieldlink_queue_depth", frozenset())], 0)
            for d in DEVICES:
                self.assertIn(("fieldlink_device_spool_readings", frozenset({("device", d)})), v)
            central = frozenset({("upstream", "central")})
            self.assertEqual(v[("fieldlink_upstream_connected", central)], 1)
            self.assertEqual(v[("fieldlink_upstream_lag_seconds", central)], 0)
            self.assertGreater(v[("fieldlink_upstream_sent_bytes_total", central)], 0)
            self.assertEqual(v[("fieldlink_health_check_ok", frozenset({("check", "upstream:central")}))], 1)
            self.assertEqual(v[("fieldlink_device_series_omitted", frozenset())], 0)

            for name in ("fieldlink_commit_duration_seconds", "fieldlink_ack_latency_seconds"):
                (family,) = [f for f in families if f.name == name]
                buckets = [(float(s.labels["le"]), s.value) for s in family.samples if s.name == name + "_bucket"]
                self.assertGreater(len(buckets), 5, name)
                self.assertEqual([le for le, _ in buckets], sorted(le for le, _ in buckets), f"{name}: le order")
                self.assertEqual(buckets[-1][0], float("inf"), f"{name}: no +Inf bucket")
                counts = [c for _, c in buckets]
                self.assertEqual(counts, sorted(counts), f"{name}: buckets not cumulative: {counts}")
                count = [s.value for s in family.samples if s.name == name + "_count"]
                total = [s.value for s in family.samples if s.name == name + "_sum"]
                self.assertEqual(count, [counts[-1]], f"{name}: _count is not the +Inf bucket")
                self.assertGreater(count[0], 0, f"{name}: nothing observed")
                self.assertGreater(total[0], 0, f"{name}: zero sum")
            # Every commit is in the commit histogram.
            self.assertEqual(v[("fieldlink_commit_duration_seconds_count", frozenset())],
                             v[("fieldlink_commits_total", frozenset())])


class Healthz(unittest.TestCase):
    def health(self, site):
        status, headers, body = get(site.base + "/healthz")
        self.assertEqual(headers["Content-Type"], "application/json")
        return status, json.loads(body)

    def test_goes_503_naming_the_broker_while_it_is_down_and_back_to_200(self):
        with Site(self, "http-healthz") as site:
            h.wait_for(lambda: self.health(site)[0] == 200, 30, "/healthz to say 200")
            status, body = self.health(site)
            self.assertEqual(body["status"], "ok")
            self.assertEqual(body["failing"], [])
            names = {c["name"] for c in body["checks"]}
            self.assertTrue({"broker", "database", "writer", "disk"} <= names, names)

            port = site.broker.port
            site.broker.kill()
            status, body = h.wait_for(lambda: (lambda r: r if r[0] == 503 else None)(self.health(site)), 60,
                                      "/healthz to say 503 with the broker gone")
            self.assertEqual(body["status"], "unhealthy")
            self.assertEqual(body["failing"], ["broker"], body)
            (broker,) = [c for c in body["checks"] if c["name"] == "broker"]
            self.assertFalse(broker["ok"])
            self.assertIn("disconnected", broker["detail"])
            # The page's data says the same.
            status_json = json.loads(get(site.base + "/api/status")[2])
            self.assertFalse(status_json["healthy"])

            site.broker = h.Mosquitto(site.wd, port=port).start()
            h.wait_for(lambda: self.health(site)[0] == 200, 60, "/healthz to say 200 with the broker back")
            self.assertEqual(self.health(site)[1]["failing"], [])


def chromium(url, workdir, *extra):
    """Headless Chromium on `url`; its stdout. Names that reach the resolver are not
    found, so nothing can leave this host whatever the page asks for."""
    argv = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-default-apps", "--no-default-browser-check", f"--user-data-dir={workdir / 'chromium-profile'}",
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1", "--virtual-time-budget=5000", *extra, url]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise AssertionError(f"chromium exited {done.returncode}:\n{done.stderr[-3000:]}")
    return done.stdout


def page_requests(net_log, page_site):
    """URLs of the requests the page made, from a Chromium NetLog (--log-net-log): the
    navigation and every request in the page's context (its network isolation key).
    The browser's own traffic (updates, clock, accounts) has other keys and is left out."""
    log = json.loads(Path(net_log).read_text())
    start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    urls = []
    for event in log["events"]:
        params = event.get("params", {})
        if event["type"] != start_job or "url" not in params:
            continue
        key = params.get("network_isolation_key", "")
        if params.get("request_type") == "main frame" or key.split(" ")[0] == page_site:
            urls.append(params["url"])
    return urls


class DomReader(html.parser.HTMLParser):
    """The parts of the rendered page the test checks: device rows, their cells, the chart."""

    def __init__(self):
        super().__init__()
        self.rows = {}  # device -> {field: text}
        self.chart_points = None
        self.svg_chart = False
        self.body_loaded = False
        self._device = None
        self._field = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "body" and a.get("data-loaded") == "true":
            self.body_loaded = True
        if tag == "tr" and "data-device" in a:
            self._device = a["data-device"]
            self.rows[self._device] = {}
        elif tag == "td" and self._device and "data-field" in a:
            self._field = a["data-field"]
            self.rows[self._device][self._field] = ""
        elif tag == "svg" and a.get("id") == "rate-chart":
            self.svg_chart = True
        elif tag == "polyline" and self.svg_chart and a.get("class") == "line":
            self.chart_points = a.get("points", "")

    def handle_endtag(self, tag):
        if tag == "tr":
            self._device = None
        if tag == "td":
            self._field = None

    def handle_data(self, data):
        if self._device and self._field:
            self.rows[self._device][self._field] += data


class StatusPage(unittest.TestCase):
    def test_page_in_chromium_lists_every_device_draws_the_chart_and_stays_on_the_gateway(self):
        self.assertTrue(CHROMIUM and shutil.which(CHROMIUM), "Chromium not found (Debian: chromium; scripts/setup.sh)")
        with Site(self, "http-page") as site:
            site.run_readers()
            per_device = {}

            def stored_settled():
                nonlocal per_device
                per_device = dict(h.query(site.db, "SELECT device, COUNT(*) FROM readings GROUP BY device"))
                status = json.loads(get(site.base + "/api/status")[2])
                return {d["device"]: d["readings"] for d in status["devices"]} == per_device

            h.wait_for(stored_settled, 30, "/api/status to count what the database holds", interval=0.3)
            self.assertEqual(sorted(per_device), DEVICES)

            # What the page is made of names no other host (the SVG namespace is a name, not a fetch).
            netloc = f"127.0.0.1:{site.http_port}"
            for path in ("/", "/status.js", "/status.css"):
                status, headers, text = get(site.base + path)
                self.assertEqual(status, 200, path)
                if path == "/":
                    self.assertIn("default-src 'self'", headers.get("Content-Security-Policy", ""))
                    assets = re.findall(r'(?:src|href)="([^"]+)"', text)
                    self.assertIn("status.js", assets)
                    for asset in assets:
                        self.assertNotRegex(asset, r"^(?:[a-z]+:)?//", f"{path} loads {asset} from elsewhere")
                hosts = set(re.findall(r"(?:https?:)?//([A-Za-z0-9.-]+)", text)) - {"www.w3.org"}
                self.assertEqual(hosts, set(), f"{path} names another host")
                self.assertNotIn("@import", text, path)

            net_log = site.wd / "chromium-netlog.json"
            dom = chromium(site.base + "/", site.wd, "--dump-dom", f"--log-net-log={net_log}")
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            shot = ARTIFACTS / "status_page.png"
            with contextlib.suppress(FileNotFoundError):
                shot.unlink()
            chromium(site.base + "/", site.wd, f"--screenshot={shot}", "--window-size=1280,1100", "--hide-scrollbars")
            self.assertTrue(shot.exists() and shot.stat().st_size > 1000, "no screenshot")

            page = DomReader()
            page.feed(dom)
            self.assertTrue(page.body_loaded, f"the page's script did not render:\n{dom[:3000]}")
            self.assertEqual(sorted(page.rows), DEVICES, dom[:3000])
            for d in DEVICES:
                row = page.rows[d]
                self.assertEqual(row["device"], d)
                self.assertEqual(int(row["readings"]), per_device[d], f"{d}: {row}")
                self.assertIn(row["state"], ("online", "offline"), row)
                self.assertNotEqual(row["backlog"], "", f"{d}: no backlog from telemetry: {row}")
            self.assertTrue(page.svg_chart, "no chart")
            points = [tuple(map(float, p.split(","))) for p in (page.chart_points or "").split()]
            self.assertEqual(len(points), 360, "the chart is not an hour of 10 s slots")
            self.assertTrue(any(y < points[0][1] for _, y in points), "the chart shows no readings")

            urls = page_requests(net_log, "http://127.0.0.1")
            outside = [u for u in urls if urllib.parse.urlsplit(u).netloc != netloc]
            self.assertEqual(outside, [], "the page made requests to other hosts")
            for asset in ("/", "/status.js", "/status.css", "/api/status"):
                self.assertIn(site.base + asset, urls, f"the NetLog shows no request for {asset}")


class Startup(unittest.TestCase):
    """The server's lifecycle with the gateway's, and --log-format json."""

    def test_json_log_has_one_object_per_line_with_the_http_port(self):
        with h.workdir("http-log-json") as wd:
            broker = h.Mosquitto(wd).start()
            port = h.free_port()
            gateway = h.Gateway(wd, broker.port, wd / "fieldlink.db",
                                ["--log-format", "json", "--http-enable", "true", "--http-port", port]).start()
            try:
                h.wait_for(lambda: "subscribed" in gateway.log() or not gateway.running(), 20, "the gateway to subscribe")
                self.assertEqual(get(f"http://127.0.0.1:{port}/healthz")[0], 200)
            finally:
                code = gateway.stop()
                broker.stop()
            self.assertEqual(code, 0, gateway.log()[-2000:])
            events = [json.loads(line) for line in gateway.log().splitlines()]
            self.assertGreater(len(events), 3)
            for e in events:
                self.assertEqual(list(e)[:3], ["time", "level", "message"], e)
                self.assertIn(e["level"], ("error", "warn", "info", "debug"))
            serving = [e for e in events if e["message"].startswith("http: serving")]
            self.assertEqual(len(serving), 1, events)
            self.assertEqual(serving[0]["port"], port)
            self.assertTrue(any(e["message"].startswith("stopped: ") for e in events), "no final stats line")

    def test_a_port_in_use_stops_the_start_naming_the_address(self):
        with h.workdir("http-bind") as wd, socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            broker = h.Mosquitto(wd).start()
            gateway = h.Gateway(wd, broker.port, wd / "fieldlink.db",
                                ["--http-enable", "true", "--http-port", port]).start()
            try:
                code = gateway.wait(timeout=30)
            finally:
                gateway.stop()
                broker.stop()
            self.assertEqual(code, 1, gateway.log())
            self.assertIn(f"http: cannot listen on 127.0.0.1:{port}: Address already in use", gateway.log())


if __name__ == "__main__":
    unittest.main()
