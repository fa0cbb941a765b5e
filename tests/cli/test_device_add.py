"""fieldlink device add NAME: what it prints (credentials, ACL, reader settings and
the one-line form), that the credentials work on a real Mosquitto with the
shipped ACL (after --reload, without a restart), and that bad input is refused
with a clear error and nothing written."""

import getpass
import re
import shutil
import subprocess
import unittest
import urllib.parse

from cli_common import fl, h

SHIPPED_ACL = h.ROOT / "config" / "mosquitto" / "fieldlink.acl"
PATTERNS = ["pattern write fieldlink/v1/%u/up", "pattern write fieldlink/v1/%u/status",
            "pattern write fieldlink/v1/%u/telemetry", "pattern read fieldlink/v1/%u/ack"]


def pub(port, user, password, topic):
    return subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-u", user, "-P", password, "-q", "1",
                           "-t", topic, "-m", "x"], capture_output=True, text=True, timeout=30)


class DeviceAdd(unittest.TestCase):
    def setUp(self):
        self._wd = h.workdir("cli-device-add")
        self.wd = self._wd.__enter__()
        self.addCleanup(self._wd.__exit__, None, None, None)
        self.passwd = self.wd / "fieldlink.passwd"
        self.acl = self.wd / "fieldlink.acl"
        shutil.copyfile(SHIPPED_ACL, self.acl)

    def add(self, *args):
        return fl("device", "add", *args, "--password-file", self.passwd, "--acl-file", self.acl)

    def settings(self, stdout):
        """The reader settings block as {key: value} and the one-line form."""
        block = stdout.split("reader settings", 1)[1]
        keys = dict(re.findall(r"(?m)^  (device|broker|CA file|username|password) +(.*)$", block))
        return keys, stdout.splitlines()[-1]

    def test_output_and_the_credentials_work(self):
        r = self.add("plant-9", "--host", "gw.example", "--port", "8884", "--ca-file", "/etc/x/ca one.crt")
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        self.assertEqual(lines[0], f"device plant-9: added to {self.passwd}")
        self.assertEqual(lines[1], f"ACL {self.acl}: its pattern entries (%u = user name = device id) cover plant-9; "
                                   "no entry of its own is needed")
        self.assertIn("systemctl reload mosquitto", lines[2])
        keys, one_line = self.settings(r.stdout)
        password = keys["password"].removesuffix(" (generated)")
        self.assertRegex(password, r"^[A-Za-z0-9]{24}$")
        self.assertEqual(keys, {"device": "plant-9", "broker": "gw.example:8884 (TLS)", "CA file": "/etc/x/ca one.crt",
                                "username": "plant-9", "password": f"{password} (generated)"})
        self.assertIn("  fieldlink-reader --device plant-9 --broker gw.example:8884 --tls --ca-file /etc/x/ca one.crt"
                      " --username plant-9 --password-file plant-9.password\n", r.stdout)
        url = urllib.parse.urlsplit(one_line)
        self.assertEqual((url.scheme, url.username, url.password, url.hostname, url.port),
                         ("fieldlink", "plant-9", password, "gw.example", 8884))
        self.assertEqual(urllib.parse.parse_qs(url.query), {"ca": ["/etc/x/ca one.crt"]})
        self.assertNotIn(" ", one_line)  # one token, for a QR code
        entries = [x for x in self.passwd.read_text().splitlines() if x]
        self.assertEqual([x.split(":")[0] for x in entries], ["plant-9"])
        self.assertNotIn(password, self.passwd.read_text())  # a hash, not the password
        self.assertEqual(self.passwd.stat().st_mode & 0o777, 0o600)
        self.assertEqual(self.acl.read_text(), SHIPPED_ACL.read_text())  # the patterns cover it: unchanged

        # A real Mosquitto with these files: the device gets in and only as itself; a second
        # device added with --reload gets in without a restart.
        port = h.free_port()
        conf = self.wd / "mosquitto.conf"
        conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {self.passwd}\n"
                        f"acl_file {self.acl}\npersistence false\nuser {getpass.getuser()}\n")
        broker = h.Process("mosquitto", ["mosquitto", "-c", conf], self.wd).start()
        try:
            h.wait_for(lambda: h.port_open(port) or not broker.running(), 10, "mosquitto")
            self.assertTrue(broker.running(), broker.log())
            self.assertEqual(pub(port, "plant-9", password, "fieldlink/v1/plant-9/up").returncode, 0)
            self.assertNotEqual(pub(port, "plant-9", password + "x", "fieldlink/v1/plant-9/up").returncode, 0)
            pid_file = self.wd / "mosquitto.pid"
            pid_file.write_text(f"{broker.proc.pid}\n")
            self.assertNotEqual(pub(port, "pump-2", "secret-2", "fieldlink/v1/pump-2/up").returncode, 0)
            r = self.add("pump-2", "--password", "secret-2", "--reload", "--pid-file", pid_file)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn(f"Mosquitto reloaded (SIGHUP to pid {broker.proc.pid})", r.stdout)
            self.assertEqual(self.settings(r.stdout)[0]["password"], "secret-2")
            h.wait_for(lambda: pub(port, "pump-2", "secret-2", "fieldlink/v1/pump-2/up").returncode == 0, 10,
                       "pump-2 to be let in after the reload", interval=0.2)
            self.assertEqual(pub(port, "plant-9", password, "fieldlink/v1/plant-9/up").returncode, 0)
        finally:
            broker.stop()

    def test_again_replaces_the_password(self):
        self.assertEqual(self.add("plant-9", "--password", "first").returncode, 0)
        r = self.add("plant-9", "--password", "second")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.splitlines()[0], f"device plant-9: password replaced in {self.passwd}")
        self.assertEqual([x.split(":")[0] for x in self.passwd.read_text().splitlines() if x], ["plant-9"])
        self.assertNotIn("(generated)", r.stdout)

    def test_acl_without_the_patterns_gets_them_once(self):
        self.acl.write_text("user fieldlink-gateway\ntopic read fieldlink/v1/+/up\n")
        r = self.add("plant-9")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(f"ACL {self.acl}: added 4 pattern entries that cover every device, plant-9 included", r.stdout)
        self.assertEqual([x for x in self.acl.read_text().splitlines() if x.startswith("pattern")], PATTERNS)
        r = self.add("pump-2")
        self.assertIn("cover pump-2; no entry of its own is needed", r.stdout)
        self.assertEqual([x for x in self.acl.read_text().splitlines() if x.startswith("pattern")], PATTERNS)

    def test_bad_input_is_refused_and_nothing_written(self):
        for name in ("bad name", "a/b", "+", "#", "x" * 33, "dév", "a:b"):
            r = self.add(name)
            self.assertEqual(r.returncode, 1, name)
            self.assertEqual(r.stderr, f"fieldlink device add: '{name}' is not a device id: 1 to 32 characters from "
                                       "A-Z a-z 0-9 _ -\n", name)
            self.assertEqual(r.stdout, "")
        self.assertEqual(self.add("x" * 32, "--password", "p").returncode, 0)  # the longest allowed
        self.passwd.unlink()
        r = self.add("fieldlink-gateway")
        self.assertEqual(r.returncode, 1)
        self.assertIn("'fieldlink-gateway' is the gateway's own user, not a device", r.stderr)
        r = self.add("plant-9", "--password", "a:b")
        self.assertEqual(r.returncode, 1)
        self.assertIn("a password cannot hold ':'", r.stderr)
        self.assertFalse(self.passwd.exists())
        self.assertEqual(fl("device", "add").returncode, 2)  # NAME is required
        self.assertEqual(fl("device").returncode, 2)  # a subcommand is required
        r = fl("device", "add", "plant-9", "--password-file", self.passwd, "--acl-file", self.wd / "none.acl")
        self.assertEqual(r.returncode, 1)
        self.assertIn(f"ACL file {self.wd / 'none.acl'} does not exist", r.stderr)
        r = self.add("plant-9", "--mosquitto-passwd", self.wd / "no-such-program")
        self.assertEqual(r.returncode, 1)
        self.assertIn("cannot run", r.stderr)


if __name__ == "__main__":
    unittest.main()
