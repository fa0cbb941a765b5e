"""A private PostgreSQL server for multi-process tests (standard library only):
Debian's postgresql-15 binaries, a fresh cluster in a folder of the test's work
directory, listening on a free 127.0.0.1 port with its unix socket in that folder.
The C++ twin is tests/forward/postgres/pg_server.hpp.

    server = PostgresServer(workdir).start()
    server.query("CREATE TABLE t (k int PRIMARY KEY)")
    server.kill()       # SIGKILL of the postmaster: a crash
    server.restart()    # same data directory and port; crash recovery runs
    server.query("SELECT count(*) FROM t")   # -> "0"
    server.stop()

As root (CI), initdb and postgres refuse to run, so they run as Debian's `postgres`
system user, which then owns the server's folder; the work directory gains
execute permission for others so that user can reach it.

Authentication: the superuser `fieldlink` and every other role log in without a
password (trust), except PASSWORD_USER, which needs PASSWORD (scram-sha-256) over TCP.
"""

import contextlib
import os
import pwd
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

PG_BIN = Path(os.environ.get("FIELDLINK_PG_BIN", "/usr/lib/postgresql/15/bin"))
SUPERUSER = "fieldlink"
DATABASE = "fieldlink"
PASSWORD_USER = "fieldlink_secret"
PASSWORD = "correct-horse-battery"


def missing_binary():
    """The first binary the harness needs that is not installed, or None."""
    for name in ("initdb", "postgres", "pg_isready", "psql"):
        path = PG_BIN / name
        if not os.access(path, os.X_OK):
            return str(path)
    return None


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _proc_stat(pid):
    """(state, ppid, start time) from /proc/<pid>/stat, or None when gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    return fields[0], int(fields[1]), int(fields[19])


def _children(parent):
    """[(pid, start time)] of the processes whose parent is `parent`."""
    children = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _proc_stat(int(entry))
            if stat and stat[1] == parent:
                children.append((int(entry), stat[2]))
    return children


def _alive(pid, start_time):
    """Still running: the same process (not a reused pid), not a zombie."""
    stat = _proc_stat(pid)
    return stat is not None and stat[2] == start_time and stat[0] not in ("Z", "X")


class PostgresServer:
    """One cluster in `workdir`/postgres; start() creates it the first time."""

    def __init__(self, workdir, port=None, settings=None):
        self.workdir = Path(workdir)
        self.dir = self.workdir / "postgres"
        self.data = self.dir / "data"
        self.socket_dir = self.dir / "sock"
        self.log_path = self.dir / "postgres.log"
        self.port = port or free_port()
        # Extra postgresql.conf settings, e.g. {"fsync": "off"}. syncfs keeps crash
        # recovery after kill() quick (one syncfs instead of an fsync per file).
        self.settings = {"listen_addresses": "127.0.0.1", "recovery_init_sync_method": "syncfs", **(settings or {})}
        self.proc = None
        self._log = None
        self._user = None
        if os.geteuid() == 0:
            entry = pwd.getpwnam("postgres")
            self._user = (entry.pw_uid, entry.pw_gid)

    # --- lifecycle -----------------------------------------------------------------------

    def start(self, timeout=60):
        """Starts the postmaster (after initdb the first time) and waits until it accepts connections."""
        if self.running():
            return self
        first = not self.data.exists()
        if first:
            self._initdb()
        argv = [PG_BIN / "postgres", "-D", self.data, "-p", self.port, "-k", self.socket_dir]
        for key, value in self.settings.items():
            argv += ["-c", f"{key}={value}"]
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([str(a) for a in argv], stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT, **self._as_postgres())
        deadline = time.monotonic() + timeout
        while not self._ready():
            if self.proc.poll() is not None:
                self._close_log()
                raise AssertionError(f"postgres exited with {self.proc.returncode}; log:\n{self.log()}")
            if time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"postgres not ready within {timeout}s; log:\n{self.log()}")
            time.sleep(0.05)
        if first:
            self.query(f"CREATE DATABASE {DATABASE}", dbname="postgres")
            self.query(f"CREATE ROLE {PASSWORD_USER} LOGIN PASSWORD '{PASSWORD}'", dbname="postgres")
        return self

    def stop(self, timeout=30):
        """Fast shutdown (SIGINT: open transactions roll back); SIGKILL if it takes too long."""
        if self.running():
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._close_log()

    def kill(self, timeout=10):
        """A crash: SIGKILL of the postmaster. Its backends notice and exit by themselves;
        waits for that (SIGKILLing any that linger) so that restart() can follow."""
        if not self.running():
            return
        children = _children(self.proc.pid)
        self.proc.kill()
        self.proc.wait()
        deadline = time.monotonic() + timeout
        while any(_alive(pid, start) for pid, start in children):
            if time.monotonic() > deadline:
                for pid, start in children:
                    if _alive(pid, start):
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(pid, signal.SIGKILL)
                time.sleep(0.1)
                break
            time.sleep(0.02)
        self._close_log()

    def restart(self, timeout=60):
        """Stops if running, then starts again on the same data directory and port."""
        self.stop()
        return self.start(timeout=timeout)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # --- connecting ----------------------------------------------------------------------

    @property
    def conninfo(self):
        """libpq conninfo of the test database as the superuser, over TCP."""
        return self.conninfo_for()

    def conninfo_for(self, user=SUPERUSER, password=None, dbname=DATABASE):
        text = f"host=127.0.0.1 port={self.port} dbname={dbname} user={user}"
        return text + (f" password={password}" if password else "")

    def query(self, sql, dbname=DATABASE, user=SUPERUSER, password=None, timeout=60):
        """Runs `sql` with psql -At (unaligned, tuples only; `|` between columns, a line per
        row) and returns its output without the final newline. Raises AssertionError (with
        psql's message) on any SQL or connection error; never prompts for a password."""
        result = subprocess.run(
            [str(PG_BIN / "psql"), "-X", "-At", "-w", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p",
             str(self.port), "-U", user, "-d", dbname, "-c", sql],
            capture_output=True, text=True, timeout=timeout,
            env={**os.environ, "PGCONNECT_TIMEOUT": "10", "PGPASSWORD": password or "",
                 "PGPASSFILE": str(self.dir / "no-passfile")})
        if result.returncode != 0:
            raise AssertionError(f"psql failed ({result.returncode}) for {sql!r}: {result.stderr.strip()}")
        return result.stdout.rstrip("\n")

    def rows(self, sql, **kwargs):
        """query() split into rows of column strings."""
        out = self.query(sql, **kwargs)
        return [line.split("|") for line in out.split("\n")] if out else []

    def log(self):
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    # --- internals -----------------------------------------------------------------------

    def _as_postgres(self):
        if self._user is None:
            return {}
        uid, gid = self._user
        return {"user": uid, "group": gid, "extra_groups": []}

    def _initdb(self):
        self.dir.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(exist_ok=True)
        if self._user is not None:
            uid, gid = self._user
            for path in (self.dir, self.socket_dir):
                os.chown(path, uid, gid)
            # The postgres user must be able to reach its folder inside the work directory.
            mode = self.workdir.stat().st_mode
            if mode & 0o001 == 0:
                os.chmod(self.workdir, mode | 0o011)
            for parent in self.workdir.parents:
                if parent.stat().st_mode & 0o001 == 0:
                    raise AssertionError(f"{parent} is not searchable by the postgres user; "
                                         "use a work directory under /tmp (or set TMPDIR)")
        result = subprocess.run(
            [str(PG_BIN / "initdb"), "-D", str(self.data), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8",
             "--locale=C", "--no-sync", "--no-instructions"],
            stdin=subprocess.DEVNULL, capture_output=True, text=True, **self._as_postgres())
        if result.returncode != 0:
            raise AssertionError(f"initdb failed:\n{result.stdout}\n{result.stderr}")
        # First match wins: the password user over TCP needs its password; everything else is trusted.
        (self.data / "pg_hba.conf").write_text(
            "local all all trust\n"
            f"host all {PASSWORD_USER} 127.0.0.1/32 scram-sha-256\n"
            "host all all 127.0.0.1/32 trust\n")

    def _ready(self):
        result = subprocess.run([str(PG_BIN / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port),
                                 "-d", "postgres", "-U", SUPERUSER, "-t", "2"],
                                stdin=subprocess.DEVNULL, capture_output=True)
        return result.returncode == 0

    def _close_log(self):
        if self._log:
            self._log.close()
            self._log = None


def _main(argv):
    """For scripts/demo.sh: `start DIR` leaves a server running in DIR and prints its conninfo;
    `stop DIR` ends it (fast shutdown)."""
    if len(argv) != 3 or argv[1] not in ("start", "stop"):
        print("usage: pg_harness.py start|stop DIR", file=sys.stderr)
        return 2
    workdir = Path(argv[2])
    if argv[1] == "start":
        workdir.mkdir(parents=True, exist_ok=True)
        port_file = workdir / "port"
        port = int(port_file.read_text()) if port_file.exists() else None
        server = PostgresServer(workdir, port=port).start()
        port_file.write_text(str(server.port))
        print(server.conninfo)
        return 0
    pid_file = workdir / "postgres" / "data" / "postmaster.pid"
    if pid_file.exists():
        pid = int(pid_file.read_text().split()[0])
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGINT)
        deadline = time.monotonic() + 30
        while pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv))
