#!/usr/bin/env python3
"""The exact-set comparison of mps2_an385_gateway.py can fail: fed SQLite files with one reading
missing, one duplicated, one never printed or one with another value, it reports each, and it
passes only the exact set (plus the keys it is told may be unprinted).

  python3 -m unittest -v mps2_an385_compare_test      (from tests/boards)
"""

import contextlib
import sqlite3
import sys
import tempfile
import unittest
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import mps2_an385_gateway as chain  # noqa: E402

INC = 0xB0E7C4F167085F5A  # above 2^63: SQLite holds it negative, as the gateway does
OTHER_DEVICE = "another-device"


def printed_set(count=12):
    """{(inc, seq): (boot, ch, mono, value)} as the image prints them."""
    return {(INC, seq): (1, seq % 2, 10 * seq, 20.0 + seq / 8) for seq in range(1, count + 1)}


class Compare(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory(prefix="fieldlink-compare-")
        self.db = Path(self.dir.name) / "fieldlink.db"
        self.printed = printed_set()

    def tearDown(self):
        self.dir.cleanup()

    def write_rows(self, readings, duplicate=None, device=chain.DEVICE):
        """The gateway's readings columns; no unique key here, so a duplicate row can exist."""
        with contextlib.closing(sqlite3.connect(self.db)) as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS readings (device TEXT, incarnation INTEGER, seq INTEGER, "
                         "boot INTEGER, channel INTEGER, mono_ms INTEGER, value REAL)")
            rows = [(device, inc - (1 << 64) if inc >= 1 << 63 else inc, seq, *fields)
                    for (inc, seq), fields in readings.items()]
            if duplicate is not None:
                rows.append(next(r for r in rows if r[2] == duplicate))
            conn.executemany("INSERT INTO readings VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
            conn.commit()

    def compare(self, may_be_unprinted=frozenset()):
        failures = []
        chain.compare(self.printed, self.db, failures, may_be_unprinted)
        return failures

    def test_the_exact_set_passes(self):
        self.write_rows(self.printed)
        self.write_rows({(INC, 99): (1, 0, 0, 1.0)}, device=OTHER_DEVICE)  # other devices do not count
        self.assertEqual(self.compare(), [])

    def test_a_missing_reading_fails(self):
        rows = dict(self.printed)
        del rows[(INC, 5)]
        self.write_rows(rows)
        failures = self.compare()
        self.assertEqual(len(failures), 1, failures)
        self.assertIn("1 of 12 readings lost", failures[0])
        self.assertIn(str((INC, 5)), failures[0])

    def test_a_duplicated_reading_fails(self):
        self.write_rows(self.printed, duplicate=7)
        failures = self.compare()
        self.assertEqual(failures, ["13 rows for 12 keys: duplicates"])

    def test_a_row_never_printed_fails(self):
        rows = dict(self.printed)
        rows[(INC, 13)] = (1, 1, 130, 21.625)
        self.write_rows(rows)
        failures = self.compare()
        self.assertEqual(len(failures), 1, failures)
        self.assertIn("1 rows the image never printed", failures[0])
        # Unless the caller knows it may exist (a kill between the append and its line).
        self.assertEqual(self.compare(may_be_unprinted={(INC, 13)}), [])

    def test_another_value_fails(self):
        rows = dict(self.printed)
        boot, ch, mono, value = rows[(INC, 3)]
        rows[(INC, 3)] = (boot, ch, mono, value + 1e-9)  # to the bit
        self.write_rows(rows)
        failures = self.compare()
        self.assertEqual(len(failures), 1, failures)
        self.assertIn("1 readings stored with other fields", failures[0])

    def test_one_missing_and_one_duplicated_both_fail(self):
        rows = dict(self.printed)
        del rows[(INC, 2)]
        self.write_rows(rows, duplicate=9)
        failures = self.compare()
        self.assertEqual(len(failures), 2, failures)
        self.assertIn("1 of 12 readings lost", failures[0])
        self.assertEqual(failures[1], "12 rows for 11 keys: duplicates")


if __name__ == "__main__":
    unittest.main()
