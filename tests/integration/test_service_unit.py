"""The shipped systemd unit (config/systemd/fieldlink-gateway.service) passes
`systemd-analyze verify` with ExecStart pointed at the built gateway, and its
sandbox keeps `systemd-analyze security` at or below the exposure recorded in
docs/operations.md ("The service"), so that loosening it fails here first."""

import os
import shutil
import subprocess
import tempfile
import unittest
from pathlib import Path

UNIT = Path(__file__).resolve().parents[2] / "config" / "systemd" / "fieldlink-gateway.service"
GATEWAY = os.environ.get("FIELDLINK_GATEWAY", "")
# systemd-analyze's overall exposure times ten (0 = locked down, 100 = none);
# docs/operations.md records 1.1.
MAX_EXPOSURE = 11


class ServiceUnit(unittest.TestCase):
    def setUp(self):
        if shutil.which("systemd-analyze") is None:
            self.fail("systemd-analyze is missing: scripts/setup.sh installs the systemd package")
        self.dir = tempfile.mkdtemp(prefix="fieldlink-unit-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        text = UNIT.read_text()
        self.assertIn("ExecStart=/usr/local/bin/fieldlink-gateway ", text)
        self.unit = Path(self.dir) / UNIT.name
        self.unit.write_text(text.replace("/usr/local/bin/fieldlink-gateway", GATEWAY))

    def run_analyze(self, *args):
        return subprocess.run(["systemd-analyze", *args], capture_output=True, text=True, timeout=120)

    def test_verify_is_clean(self):
        result = self.run_analyze("verify", str(self.unit))
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertEqual(result.stdout + result.stderr, "", "systemd-analyze verify warned")

    def test_notify_watchdog_and_sandbox(self):
        text = self.unit.read_text()
        for line in ("Type=notify", "WatchdogSec=", "NoNewPrivileges=true", "ProtectSystem=strict",
                     "PrivateTmp=true", "RestrictAddressFamilies=", "StateDirectory=fieldlink"):
            self.assertIn(line, text)
        result = self.run_analyze("security", "--offline=true", f"--threshold={MAX_EXPOSURE}", str(self.unit))
        self.assertEqual(result.returncode, 0, f"exposure above {MAX_EXPOSURE / 10}:\n{result.stdout[-600:]}")
        loose = self.run_analyze("security", "--offline=true", f"--threshold={MAX_EXPOSURE - 6}", str(self.unit))
        self.assertNotEqual(loose.returncode, 0, "the threshold check cannot fail: it passed a stricter bound")


if __name__ == "__main__":
    unittest.main()
