"""A private Mosquitto running the shipped production variant
(config/mosquitto/fieldlink-production.conf and fieldlink.acl), with a test CA and
certificates made here by `openssl` and a password file made by `mosquitto_passwd`.
Only paths and ports are changed; every other line is the shipped one."""

import getpass
import re
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
import harness as h  # noqa: E402

PRODUCTION_CONF = h.ROOT / "config" / "mosquitto" / "fieldlink-production.conf"
SHIPPED_ACL = h.ROOT / "config" / "mosquitto" / "fieldlink.acl"
GATEWAY_USER = "fieldlink-gateway"


def run(argv, **kwargs):
    return subprocess.run([str(a) for a in argv], check=True, capture_output=True, timeout=60, **kwargs)


class Pki:
    """A test CA, a second CA that signed nothing of the broker's, and certificates:
    `server` for 127.0.0.1 and localhost, `elsewhere` (same CA) for another host name,
    `client` for a device's client certificate."""

    def __init__(self, directory):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._ca("ca")
        self._ca("other-ca")
        self._signed("server", "ca", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth")
        self._signed("elsewhere", "ca", "subjectAltName=DNS:elsewhere.invalid\nextendedKeyUsage=serverAuth")
        self._signed("client", "ca", "extendedKeyUsage=clientAuth")

    def crt(self, name):
        return self.dir / f"{name}.crt"

    def key(self, name):
        return self.dir / f"{name}.key"

    def _key(self, name):
        run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-out", self.key(name)])

    def _ca(self, name):
        self._key(name)
        run(["openssl", "req", "-x509", "-new", "-key", self.key(name), "-out", self.crt(name), "-days", "2",
             "-subj", f"/CN=fieldlink test {name}", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign"])

    def _signed(self, name, ca, extensions):
        self._key(name)
        csr = self.dir / f"{name}.csr"
        ext = self.dir / f"{name}.ext"
        ext.write_text(extensions + "\n")
        run(["openssl", "req", "-new", "-key", self.key(name), "-out", csr, "-subj", f"/CN={name}"])
        run(["openssl", "x509", "-req", "-in", csr, "-CA", self.crt(ca), "-CAkey", self.key(ca),
             "-CAcreateserial", "-out", self.crt(name), "-days", "2", "-extfile", ext])


def substitute(text, pattern, replacement):
    text, count = re.subn(pattern, replacement, text, flags=re.M)
    assert count == 1, f"production mosquitto config changed shape: {pattern!r} found {count} times"
    return text


class SecureMosquitto(h.Process):
    """The production variant with its TLS listener and loopback listener on free ports,
    plus two test-only TLS listeners: one whose certificate names another host
    (`wrong_name_port`) and one that requires a client certificate (`mutual_port`)."""

    def __init__(self, workdir, pki, passwd, acl=SHIPPED_ACL):
        self.tls_port = h.free_port()
        self.plain_port = h.free_port()
        self.wrong_name_port = h.free_port()
        self.mutual_port = h.free_port()
        self.pki = pki
        workdir = Path(workdir)
        persistence = workdir / "mosquitto-data"
        persistence.mkdir(exist_ok=True)
        text = PRODUCTION_CONF.read_text()
        text = substitute(text, r"^listener 8883$", f"listener {self.tls_port} 127.0.0.1")
        text = substitute(text, r"^listener 1883 127\.0\.0\.1$", f"listener {self.plain_port} 127.0.0.1")
        text = substitute(text, r"^password_file /etc/mosquitto/fieldlink\.passwd$", f"password_file {passwd}")
        text = substitute(text, r"^acl_file /etc/mosquitto/fieldlink\.acl$", f"acl_file {acl}")
        for name in ("ca.crt", "server.crt", "server.key"):
            text = substitute(text, rf" /etc/mosquitto/certs/{re.escape(name)}$", f" {pki.dir / name}")
        text += (f"\n# test only\npersistence_location {persistence}/\nuser {getpass.getuser()}\n"
                 f"listener {self.wrong_name_port} 127.0.0.1\ncafile {pki.crt('ca')}\n"
                 f"certfile {pki.crt('elsewhere')}\nkeyfile {pki.key('elsewhere')}\n"
                 f"listener {self.mutual_port} 127.0.0.1\ncafile {pki.crt('ca')}\n"
                 f"certfile {pki.crt('server')}\nkeyfile {pki.key('server')}\nrequire_certificate true\n")
        conf = workdir / "mosquitto.conf"
        conf.write_text(text)
        super().__init__("mosquitto", ["mosquitto", "-c", conf], workdir)

    def start(self):
        super().start()
        ports = (self.tls_port, self.plain_port, self.wrong_name_port, self.mutual_port)
        h.wait_for(lambda: all(h.port_open(p) for p in ports) or not self.running(), 10, "mosquitto to listen")
        if not self.running():
            raise AssertionError(f"mosquitto exited:\n{self.log()}")
        return self

    def reload(self):
        """SIGHUP: Mosquitto rereads the password and ACL files."""
        self.signal(1)


def add_user(passwd, user, password):
    """An entry made by Mosquitto's own tool (creating the file when missing)."""
    argv = ["mosquitto_passwd", "-b", passwd, user, password]
    if not Path(passwd).exists():
        argv.insert(1, "-c")
    run(argv)


def client_args(broker, user=None, password=None, tls=False, port=None, ca=None):
    """Arguments for mosquitto_pub / mosquitto_sub."""
    args = ["-h", "127.0.0.1", "-p", str(port or (broker.tls_port if tls else broker.plain_port))]
    if tls:
        args += ["--cafile", str(ca or broker.pki.crt("ca"))]
    if user is not None:
        args += ["-u", user]
    if password is not None:
        args += ["-P", password]
    return args


def publish(broker, topic, payload, **kwargs):
    """mosquitto_pub at QoS 1; returns the CompletedProcess (returncode 0: CONNACK accepted, PUBACK got)."""
    retain = ["-r"] if kwargs.pop("retain", False) else []
    return subprocess.run(["mosquitto_pub", *client_args(broker, **kwargs), "-q", "1", *retain, "-t", topic,
                           "-m", payload], capture_output=True, timeout=30)


def gateway_config(path, broker_uri, db, password, ca_file="", verify_host=True, user=GATEWAY_USER):
    """A gateway TOML file: the [mqtt] keys of this work, the rest as the integration harness uses."""
    Path(path).write_text(
        "[mqtt]\n"
        f'broker = "{broker_uri}"\n'
        f'client_id = "fieldlink-gateway-sec-{Path(db).stem}"\n'
        f'username = "{user}"\n'
        f'password = "{password}"\n'
        f'ca_file = "{ca_file}"\n'
        f"verify_host = {'true' if verify_host else 'false'}\n"
        "[database]\n"
        f'path = "{db}"\n'
        "[log]\n"
        'level = "info"\n'
        "stats_interval_s = 0\n")
    return path


class SecureGateway(h.Process):
    def __init__(self, workdir, config, name="gateway"):
        super().__init__(name, [h.GATEWAY, "--config", config], workdir)

    def wait_subscribed(self, timeout=30):
        h.wait_for(lambda: "subscribed to" in self.log() or not self.running(), timeout, "the gateway to subscribe")
        if not self.running():
            raise AssertionError(f"gateway exited:\n{self.log()}")
