"""fieldlink beside a gateway that is writing: readers publish all the time while
query, devices, status and export run over and over. None of them may fail
(no SQLITE_BUSY, no "database is locked"), what each shows must be rows the
database really has, and the gateway must store every reading exactly once."""

import csv
import io
import json
import sys
import threading
import unittest

from cli_common import fl, from_csv, h, stored_rows

COMMANDS = [
    ["query", "--csv"],
    ["query", "--ndjson", "--device", "w*", "--since", "-1h"],
    ["devices", "--json"],
    ["status", "--json", "--max-silence", "0"],
    ["export", "-o", "{wd}/export-{n}.ndjson.zst"],
    ["dead-letters"],
]
# The query between every other command, so that several queries see the table grow even when
# each run is slow (under the sanitizers a run takes about a second and the readers run for 8).
SCHEDULE = [argv for other in COMMANDS[1:] for argv in (COMMANDS[0], other)]


class WhileWriting(unittest.TestCase):
    def test_readers_and_the_command_at_once(self):
        with h.workdir("cli-writing") as wd:
            broker = h.Mosquitto(wd).start()
            db = wd / "fieldlink.db"
            gateway = h.Gateway(wd, broker.port, db).start()
            readers = [h.Reader(wd, f"w{i}", broker.port, ["--channels", "2", "--period", "5", "--duration", "8",
                                                            "--telemetry-interval", "1", "--drain-timeout", "30"])
                       for i in range(3)]
            runs = []
            queries = []
            try:
                for r in readers:
                    r.start()
                h.wait_for(lambda: db.exists() and h.query(db, "PRAGMA user_version")[0][0] > 0, 30, "the schema")
                done = threading.Event()

                def hammer():
                    n = 0
                    while not done.is_set():
                        for argv in SCHEDULE:
                            argv = [a.format(wd=wd, n=n) for a in argv]
                            # Every other run with no busy timeout: WAL readers never wait for the writer.
                            wait = ["--busy-timeout", "0"] if n % 2 else []
                            r = fl("--db", db, *wait, *argv, timeout=60)
                            runs.append((argv, r))
                            if argv[:2] == ["query", "--csv"]:
                                queries.append(r.stdout)
                            n += 1

                worker = threading.Thread(target=hammer)
                worker.start()
                try:
                    for r in readers:
                        self.assertEqual(r.wait(timeout=90), 0, r.log())
                finally:
                    done.set()
                    worker.join()
            finally:
                for r in readers:
                    r.stop()
                gateway.stop()
                broker.stop()

            failed = [(argv, r.returncode, r.stderr) for argv, r in runs if r.returncode != 0 or r.stderr.strip()
                      and not r.stderr.startswith("fieldlink export: ")]
            self.assertFalse(failed, f"{len(failed)} of {len(runs)} runs failed, e.g. {failed[:3]}")
            self.assertGreater(len(runs), 3 * len(COMMANDS), "the command ran while the readers did")
            for argv, r in runs:
                if argv[0] in ("devices", "status"):
                    json.loads(r.stdout)
            log = gateway.log()
            for bad in ("locked", "busy", "database commit", "error"):
                self.assertNotIn(bad, log.lower())
            h.assert_exactly_once(self, readers, db)
            # Every query showed real rows as they are now (but for wall time filled in later), and a
            # prefix of the ids (one snapshot: the newest row when it started).
            final = {r["id"]: r for r in stored_rows(db)}
            ordered = sorted(final)
            sizes = set()
            for text in queries:
                rows = [from_csv(x) for x in csv.DictReader(io.StringIO(text, newline=""))]
                for r in rows:
                    now = dict(final[r["id"]])
                    if r["unix_ms"] is None:
                        now["unix_ms"] = now["time"] = None
                    self.assertEqual(r, now)
                self.assertEqual([r["id"] for r in rows], ordered[:len(rows)])
                sizes.add(len(rows))
            self.assertGreater(len(sizes), 1, "the queries ran while rows were being added")
            print(f"\n  {len(runs)} fieldlink runs beside the gateway, query sizes {min(sizes)}..{max(sizes)} rows,"
                  f" {len(final)} stored", file=sys.stderr)


if __name__ == "__main__":
    unittest.main()
