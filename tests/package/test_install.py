"""Install test of the Debian packages in a throwaway root: an overlay of this
machine's own root (its libraries, systemd, Mosquitto) in a private mount
namespace, so nothing of the install reaches the machine. In it: dpkg installs
both packages (user, folders, conffiles), `systemd-analyze verify` checks the
installed units, the installed gateway runs as the package's user on the
package's paths, as its unit would (with a private Mosquitto from the installed
snippet on a free loopback port), the installed reader runs as its user with a
flash file under /var/lib/fieldlink-reader, every reading lands exactly once;
an upgrade (the same packages one version up) over a schema-v1 database and an
edited conffile keeps both and migrates the schema; then remove keeps the
database and the conffiles, and purge deletes them.
Needs root (mount namespaces); skipped otherwise."""

import contextlib
import fcntl
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path

BUILD = Path(os.environ.get("FIELDLINK_BUILD_DIR", "."))
# The schema the gateway writes, as its store library declares it.
SCHEMA_VERSION = int(
    re.search(
        r"kSchemaVersion = (\d+);",
        (Path(__file__).resolve().parents[2] / "gateway/store/include/fieldlink/gateway/store/sqlite_store.hpp").read_text(),
    ).group(1)
)
MAKE_OLD_DB = os.environ.get("FIELDLINK_MAKE_OLD_DB", "")
INNER = os.environ.get("FIELDLINK_INSTALL_NS") == "1"


def run(*argv, check=True, **kw):
    done = subprocess.run([str(a) for a in argv], check=False, capture_output=True, text=True, timeout=600,
                          stdin=subprocess.DEVNULL, **kw)
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, argv))} exited {done.returncode}:\n{done.stdout}{done.stderr}")
    return done


@contextlib.contextmanager
def host_dpkg_locked(timeout_s=300):
    """Holds this machine's dpkg frontend lock (the one apt and dpkg take) while the
    overlay is in use: its lower layer is the live root, and an install running on
    the machine meanwhile would show the test a half-written dpkg database."""
    with open("/var/lib/dpkg/lock-frontend", "a+b") as lock:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.lockf(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"dpkg on this machine stayed busy for {timeout_s} s") from None
                time.sleep(0.5)
        try:
            yield
        finally:
            fcntl.lockf(lock, fcntl.LOCK_UN)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Root:
    """The overlay root at `path`, with its own /proc, /dev, /tmp and /run."""

    def __init__(self, work):
        self.path = work / "root"
        for d in ("upper", "ovl-work", "root"):
            (work / d).mkdir()
        run("mount", "-t", "overlay", "overlay", "-o",
            f"lowerdir=/,upperdir={work / 'upper'},workdir={work / 'ovl-work'}", self.path)
        run("mount", "-t", "proc", "proc", self.path / "proc")
        run("mount", "--rbind", "/dev", self.path / "dev")
        # No /run/systemd/system inside: the maintainer scripts leave the
        # machine's systemd alone, as in any chroot.
        for d in ("tmp", "run"):
            run("mount", "-t", "tmpfs", "tmpfs", self.path / d)

    def run(self, *argv, check=True):
        return run("chroot", self.path, *argv, check=check)

    def popen(self, argv, log):
        return subprocess.Popen(["chroot", str(self.path), *map(str, argv)], stdout=log, stderr=subprocess.STDOUT)

    def file(self, path):
        return self.path / path.lstrip("/")


@unittest.skipUnless(os.geteuid() == 0, "needs root for a mount namespace and chroot")
class Install(unittest.TestCase):
    def test_install_run_remove_purge(self):
        if not INNER:
            probe = self.overlay_probe()
            if probe:
                self.skipTest(f"cannot make a throwaway root here (as fault.disk_full, needs mount rights): {probe}")
            # Again, in a private mount namespace: every mount dies with it.
            env = {**os.environ, "FIELDLINK_INSTALL_NS": "1"}
            with host_dpkg_locked():
                result = subprocess.run(["unshare", "--mount", "--propagation", "private", sys.executable, "-m",
                                         "unittest", "-v", "test_install"], env=env, capture_output=True,
                                        text=True, timeout=900, cwd=Path(__file__).parent)
            sys.stderr.write(result.stdout + result.stderr)
            self.assertEqual(result.returncode, 0, "the install test in its namespace failed (output above)")
            self.assertRegex(result.stderr, r"(?m)^OK")
            return
        work = Path(tempfile.mkdtemp(prefix="fieldlink-install-"))
        procs = []
        try:
            self.install_and_check(work, procs)
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
            run("umount", "-R", work / "root", check=False)
            shutil.rmtree(work, ignore_errors=True)

    def install_and_check(self, work, procs):
        packages = work / "debs"
        run("cpack", "-G", "DEB", "--config", BUILD / "CPackConfig.cmake", "-B", packages)
        debs = sorted(packages.glob("*.deb"))
        self.assertEqual(len(debs), 2, debs)
        root = Root(work)
        (root.file("/tmp/debs")).mkdir()
        for deb in debs:
            shutil.copy(deb, root.file("/tmp/debs"))

        # Install.
        self.assertIsNone(self.user(root, "fieldlink"), "the machine already has a fieldlink user")
        root.run("dpkg", "-i", *[f"/tmp/debs/{d.name}" for d in debs])
        for name in ("fieldlink-gateway", "fieldlink-reader"):
            status = root.run("dpkg-query", "-W", "-f=${Status}", name).stdout
            self.assertEqual(status, "install ok installed")
        for user, home in (("fieldlink", "/var/lib/fieldlink"), ("fieldlink-reader", "/var/lib/fieldlink-reader")):
            entry = self.user(root, user)
            self.assertIsNotNone(entry, f"no system user {user}")
            self.assertLess(int(entry[2]), 1000, f"{user} is not a system user: {entry}")
            self.assertEqual(entry[5], home)
            owner = root.run("stat", "-c", "%U %a", home).stdout.split()
            self.assertEqual(owner, [user, "750"])
        conffiles = root.run("dpkg-query", "-W", "-f=${Conffiles}", "fieldlink-gateway").stdout
        self.assertIn("/etc/fieldlink/gateway.toml", conffiles)
        self.assertIn("/etc/mosquitto/conf.d/fieldlink.conf", conffiles)
        for unit in ("fieldlink-gateway.service", "fieldlink-serial-bridge.service", "fieldlink-reader@.service"):
            verify = root.run("systemd-analyze", "verify", f"/lib/systemd/system/{unit}", check=False)
            self.assertEqual(verify.returncode, 0, verify.stdout + verify.stderr)
        self.assertTrue(root.file("/etc/systemd/system/multi-user.target.wants/fieldlink-gateway.service").is_symlink(),
                        "the gateway's unit was not enabled")

        # Run, as the units would: the packaged users, paths and config.
        port = free_port()
        snippet = root.file("/etc/mosquitto/conf.d/fieldlink.conf").read_text()
        snippet, n = re.subn(r"(?m)^listener .*$", f"listener {port} 127.0.0.1", snippet)
        self.assertEqual(n, 1)
        root.file("/tmp/mq").mkdir()
        root.file("/tmp/mq/mosquitto.conf").write_text(snippet + "\npersistence_location /tmp/mq/\nuser root\n")
        logs = work / "logs"
        logs.mkdir()
        procs.append(root.popen(["mosquitto", "-c", "/tmp/mq/mosquitto.conf"], open(logs / "mosquitto.log", "wb")))
        self.wait_for(lambda: self.port_open(port), 20, "mosquitto")
        db = "/var/lib/fieldlink/fieldlink.db"
        self.run_gateway_and_reader(root, port, logs, procs, "pkg-1")
        self.assertEqual(root.run("stat", "-c", "%U", db).stdout.strip(), "fieldlink")

        # Upgrade over a database that an earlier release left (schema v1) and
        # a conffile the operator edited: both are kept, the schema migrates.
        for f in root.file("/var/lib/fieldlink").glob("fieldlink.db*"):
            f.unlink()
        made = run(MAKE_OLD_DB, root.file(db), 1)
        self.assertEqual(made.stdout.strip(), "schema v1")
        root.run("chown", "fieldlink:fieldlink", db)
        with open(root.file("/etc/fieldlink/gateway.toml"), "a") as f:
            f.write("# edited by the operator\n")
        newer = self.next_version(work, debs)
        for deb in newer:
            shutil.copy(deb, root.file("/tmp/debs"))
        root.run("dpkg", "-i", *[f"/tmp/debs/{d.name}" for d in newer])
        version = root.run("dpkg-query", "-W", "-f=${Version}", "fieldlink-gateway").stdout
        self.assertTrue(version.endswith(".1"), version)
        self.assertIn("# edited by the operator", root.file("/etc/fieldlink/gateway.toml").read_text())
        self.run_gateway_and_reader(root, port, logs, procs, "pkg-2")
        self.assertEqual(root.run("sqlite3", db, "PRAGMA user_version").stdout.strip(), str(SCHEMA_VERSION))
        kept = root.run("sqlite3", db, "SELECT count(*) FROM readings WHERE device = 'before-upgrade'").stdout
        self.assertEqual(kept.strip(), "1", "the reading stored before the upgrade is gone")

        # Remove keeps the data and the conffiles; purge deletes them.
        root.run("dpkg", "-r", "fieldlink-gateway", "fieldlink-reader")
        self.assertFalse(root.file("/usr/bin/fieldlink-gateway").exists())
        self.assertFalse(root.file("/usr/bin/fieldlink-reader").exists())
        self.assertTrue(root.file("/etc/fieldlink/gateway.toml").exists())
        self.assertTrue(root.file(db).exists())
        root.run("dpkg", "-P", "fieldlink-gateway", "fieldlink-reader")
        for gone in ("/etc/fieldlink/gateway.toml", "/etc/mosquitto/conf.d/fieldlink.conf", "/var/lib/fieldlink",
                     "/var/lib/fieldlink-reader", "/lib/systemd/system/fieldlink-gateway.service"):
            self.assertFalse(root.file(gone).exists(), f"{gone} left after purge")
        for name in ("fieldlink-gateway", "fieldlink-reader"):
            status = root.run("dpkg-query", "-W", "-f=${Status}", name, check=False).stdout
            self.assertNotIn("installed", status.replace("not-installed", ""), status)

    def run_gateway_and_reader(self, root, port, logs, procs, device):
        """The installed gateway and reader, as their units run them, until
        every reading of `device` is acked; then the stored set must be exactly
        the produced one."""
        log = logs / f"gateway-{device}.log"
        # setpriv execs (runuser would fork and take the SIGTERM itself).
        gateway = root.popen(["setpriv", "--reuid=fieldlink", "--regid=fieldlink", "--init-groups", "sh", "-c",
                              "cd /var/lib/fieldlink && exec /usr/bin/fieldlink-gateway "
                              f"--config /etc/fieldlink/gateway.toml --broker tcp://127.0.0.1:{port}"],
                             open(log, "wb"))
        procs.append(gateway)
        self.wait_for(lambda: "subscribed to" in log.read_text() or gateway.poll() is not None, 60,
                      "the gateway to subscribe")
        self.assertIsNone(gateway.poll(), log.read_text())
        record = f"/var/lib/fieldlink-reader/{device}.csv"
        reader = root.run("setpriv", "--reuid=fieldlink-reader", "--regid=fieldlink-reader", "--init-groups",
                          "/usr/bin/fieldlink-reader", "--device", device, "--broker", f"127.0.0.1:{port}",
                          "--flash", f"/var/lib/fieldlink-reader/{device}.flash", "--flash-sectors", "16",
                          "--period", "20", "--batch-size", "8", "--duration", "3", "--record-file", record,
                          check=False)
        self.assertEqual(reader.returncode, 0, reader.stdout + reader.stderr)
        gateway.terminate()
        self.assertEqual(gateway.wait(timeout=60), 0, log.read_text())
        produced = {tuple(line.split(",")[1:3]) for line in root.file(record).read_text().splitlines()}
        self.assertGreater(len(produced), 0)
        rows = root.run("sqlite3", "/var/lib/fieldlink/fieldlink.db",
                        f"SELECT printf('%016x', incarnation), seq FROM readings WHERE device = '{device}'").stdout
        stored = {tuple(r.split("|")) for r in rows.split()}
        self.assertEqual(len(rows.split()), len(stored), "duplicate rows")
        self.assertEqual(stored, produced)

    @staticmethod
    def next_version(work, debs):
        """The same packages with the version one step up, as the next release."""
        out = work / "next"
        out.mkdir()
        built = []
        for deb in debs:
            tree = out / deb.stem
            run("dpkg-deb", "-R", deb, tree)
            control = tree / "DEBIAN" / "control"
            text, n = re.subn(r"(?m)^Version: (.*)$", lambda m: f"Version: {m.group(1)}.1", control.read_text())
            assert n == 1
            control.write_text(text)
            target = out / deb.name.replace(".deb", "-next.deb")
            run("dpkg-deb", "--root-owner-group", "-b", tree, target)
            built.append(target)
        return built

    @staticmethod
    def overlay_probe():
        """Empty when an overlay of / mounts in a private namespace, else why not."""
        with tempfile.TemporaryDirectory(prefix="fieldlink-probe-") as d:
            for sub in ("upper", "work", "root"):
                os.mkdir(os.path.join(d, sub))
            result = subprocess.run(["unshare", "--mount", "--propagation", "private", "mount", "-t", "overlay",
                                     "overlay", "-o", f"lowerdir=/,upperdir={d}/upper,workdir={d}/work",
                                     f"{d}/root"], capture_output=True, text=True, timeout=60)
            return "" if result.returncode == 0 else (result.stderr.strip() or f"exit {result.returncode}")

    @staticmethod
    def user(root, name):
        entry = root.run("getent", "passwd", name, check=False).stdout.strip()
        return entry.split(":") if entry else None

    @staticmethod
    def port_open(port):
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0

    @staticmethod
    def wait_for(predicate, timeout, what):
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            time.sleep(0.1)


if __name__ == "__main__":
    unittest.main()
