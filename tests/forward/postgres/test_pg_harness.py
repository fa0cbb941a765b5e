"""The Python PostgreSQL harness (tests/integration/pg_harness.py) against the real
server: start, create and fill a table, SIGKILL the postmaster, restart on the same
data directory and port, and find the committed rows still there."""

import sys
import tempfile
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "integration"))

import pg_harness  # noqa: E402

MISSING = pg_harness.missing_binary()

SKIP = unittest.skipIf(MISSING, f"{MISSING} is not installed (Debian package postgresql-15)")


@SKIP
class KillRestartTest(unittest.TestCase):
    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="fieldlink-pgharness-")
        self.server = pg_harness.PostgresServer(self._tmp.name)
        self.addCleanup(self._tmp.cleanup)
        self.addCleanup(self.server.stop)

    def test_committed_rows_survive_a_kill_and_restart(self):
        server = self.server.start()
        self.assertTrue(server.running())
        self.assertIn(f"port={server.port}", server.conninfo)
        server.query("CREATE TABLE readings (k int PRIMARY KEY, v double precision)")
        server.query("INSERT INTO readings SELECT g, g / 8.0 FROM generate_series(1, 1000) g")
        port = server.port

        server.kill()
        self.assertFalse(server.running())
        with self.assertRaises(AssertionError):
            server.query("SELECT 1", timeout=20)

        server.restart()
        self.assertEqual(server.port, port)
        self.assertEqual(server.query("SELECT count(*), sum(v) FROM readings"), "1000|62562.5")
        self.assertEqual(server.rows("SELECT k, v FROM readings WHERE k <= 2 ORDER BY k"), [["1", "0.125"], ["2", "0.25"]])
        self.assertIn("automatic recovery", server.log())

        # A clean stop and start keep the data too.
        server.stop()
        server.start()
        self.assertEqual(server.query("SELECT count(*) FROM readings"), "1000")


@SKIP
class QueryTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls._tmp = tempfile.TemporaryDirectory(prefix="fieldlink-pgharness-")
        cls.server = pg_harness.PostgresServer(cls._tmp.name)
        cls.addClassCleanup(cls._tmp.cleanup)
        cls.addClassCleanup(cls.server.stop)
        cls.server.start()

    def test_password_user_needs_its_password(self):
        server = self.server
        user = pg_harness.PASSWORD_USER
        self.assertEqual(server.query("SELECT current_user", user=user, password=pg_harness.PASSWORD), user)
        with self.assertRaisesRegex(AssertionError, "password authentication failed"):
            server.query("SELECT 1", user=user, password="wrong")
        with self.assertRaisesRegex(AssertionError, "no password supplied"):
            server.query("SELECT 1", user=user)

    def test_sql_errors_raise(self):
        with self.assertRaisesRegex(AssertionError, "no_such_table"):
            self.server.query("SELECT * FROM no_such_table")

    def test_rows_split_columns(self):
        self.assertEqual(self.server.rows("SELECT 1, 'a' UNION ALL SELECT 2, NULL ORDER BY 1"), [["1", "a"], ["2", ""]])
        self.assertEqual(self.server.rows("SELECT 1 WHERE false"), [])


if __name__ == "__main__":
    unittest.main()
