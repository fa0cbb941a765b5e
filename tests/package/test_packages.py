"""Builds the Debian packages of this build tree with CPack (the same command as
`cmake --build <dir> --target package`) into a temporary folder and checks what
is in them: names, architecture, version, dependencies, conffiles, paths, the
units, the packaged config's database path and the maintainer scripts. The
install test (a throwaway root) is separate."""

import os
import re
import shutil
import subprocess
import tempfile
import unittest
from pathlib import Path

BUILD = Path(os.environ["FIELDLINK_BUILD_DIR"])
ARCH = os.environ["FIELDLINK_DEB_ARCH"]
CROSS = os.environ.get("FIELDLINK_CROSS") == "1"


def run(*argv, **kw):
    return subprocess.run([str(a) for a in argv], check=True, capture_output=True, text=True, timeout=600, **kw)


class Packages(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="fieldlink-packages-")
        out = Path(cls.tmp.name)
        run("cpack", "-G", "DEB", "--config", BUILD / "CPackConfig.cmake", "-B", out)
        cls.debs = {p.name.split("_")[0]: p for p in out.glob("*.deb")}
        cls.trees = {}
        for name, deb in cls.debs.items():
            tree = out / name
            run("dpkg-deb", "-R", deb, tree)  # files, and DEBIAN/ with the control files
            cls.trees[name] = tree

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def field(self, name, key):
        return run("dpkg-deb", "-f", self.debs[name], key).stdout.strip()

    def test_two_packages_for_this_architecture(self):
        self.assertEqual(sorted(self.debs), ["fieldlink-gateway", "fieldlink-reader"])
        for name, deb in self.debs.items():
            self.assertEqual(self.field(name, "Architecture"), ARCH)
            self.assertRegex(self.field(name, "Version"), r"^\d+\.\d+\.\d+(\+git\d+\.[0-9a-f]+)?$")
            self.assertTrue(deb.name.endswith(f"_{ARCH}.deb"), deb.name)

    def test_gateway_contents(self):
        tree = self.trees["fieldlink-gateway"]
        for path in ("usr/bin/fieldlink-gateway", "usr/bin/fieldlink-serial-bridge", "etc/fieldlink/gateway.toml",
                     "lib/systemd/system/fieldlink-serial-bridge.service",
                     "etc/mosquitto/conf.d/fieldlink.conf", "lib/systemd/system/fieldlink-gateway.service",
                     "usr/lib/sysusers.d/fieldlink.conf", "usr/share/doc/fieldlink-gateway/copyright"):
            self.assertTrue((tree / path).is_file(), path)
        conffiles = (tree / "DEBIAN" / "conffiles").read_text().split()
        self.assertEqual(sorted(conffiles), ["/etc/fieldlink/gateway.toml", "/etc/mosquitto/conf.d/fieldlink.conf"])
        unit = (tree / "lib/systemd/system/fieldlink-gateway.service").read_text()
        self.assertIn("ExecStart=/usr/bin/fieldlink-gateway --config /etc/fieldlink/gateway.toml", unit)
        bridge = (tree / "lib/systemd/system/fieldlink-serial-bridge.service").read_text()
        self.assertIn("ExecStart=/usr/bin/fieldlink-serial-bridge ", bridge)
        self.assertIn("Type=notify", unit)
        self.assertNotIn("/usr/local", unit)
        toml = (tree / "etc/fieldlink/gateway.toml").read_text()
        self.assertRegex(toml, r'(?m)^path = "/var/lib/fieldlink/fieldlink\.db"$')
        self.assertIn("u fieldlink ", (tree / "usr/lib/sysusers.d/fieldlink.conf").read_text())
        depends = self.field("fieldlink-gateway", "Depends")
        for lib in ("libpaho-mqttpp3-1", "libpaho-mqtt1.3", "libsqlite3-0", "libfmt9", "libtomlplusplus3",
                    "libpq5", "libzstd1", "libcpp-httplib0.11", "systemd"):
            self.assertRegex(depends, rf"(^|, ){re.escape(lib)}( |,|$)", depends)
        self.assertEqual(self.field("fieldlink-gateway", "Recommends"), "mosquitto")
        # Stripped: no debug sections (CPACK_STRIP_FILES).
        sections = run("readelf", "-S", "-W", tree / "usr/bin/fieldlink-gateway").stdout
        self.assertNotIn(".debug_info", sections)

    @unittest.skipIf(CROSS, "the packaged gateway is for another architecture")
    def test_packaged_config_is_what_the_gateway_reads(self):
        tree = self.trees["fieldlink-gateway"]
        printed = run(tree / "usr/bin/fieldlink-gateway", "--config", tree / "etc/fieldlink/gateway.toml",
                      "--print-config").stdout
        self.assertRegex(printed, r'(?m)^path = "/var/lib/fieldlink/fieldlink\.db"$')

    def test_reader_contents(self):
        tree = self.trees["fieldlink-reader"]
        for path in ("usr/bin/fieldlink-reader", "lib/systemd/system/fieldlink-reader@.service",
                     "usr/lib/sysusers.d/fieldlink-reader.conf", "usr/share/doc/fieldlink-reader/copyright"):
            self.assertTrue((tree / path).is_file(), path)
        unit = (tree / "lib/systemd/system/fieldlink-reader@.service").read_text()
        self.assertIn("--device %i", unit)
        self.assertIn("--flash /var/lib/fieldlink-reader/%i.flash", unit)
        self.assertIn("systemd", self.field("fieldlink-reader", "Depends"))

    def test_lintian_is_clean(self):
        # Every override in config/debian/lintian/ says why; anything else fails.
        if shutil.which("lintian") is None:
            self.fail("lintian is missing: scripts/setup.sh installs it")
        result = subprocess.run(["lintian", "--tag-display-limit", "0", "--fail-on", "error,warning,info",
                                 *map(str, self.debs.values())], capture_output=True, text=True, timeout=600)
        tags = [line for line in (result.stdout + result.stderr).splitlines()
                if not line.startswith("running with root privileges")]
        self.assertEqual(tags, [])
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)

    def test_maintainer_scripts(self):
        for name, tree in self.trees.items():
            scripts = [p for p in (tree / "DEBIAN").iterdir() if p.name in ("postinst", "prerm", "postrm")]
            self.assertIn("postinst", [p.name for p in scripts], name)
            for script in scripts:
                self.assertTrue(os.access(script, os.X_OK), script)
                run("sh", "-n", script)


if __name__ == "__main__":
    unittest.main()
