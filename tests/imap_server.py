"""A real IMAP server for the tests: Debian's Dovecot, on a loopback port, over TLS.

Configured from scratch in a temporary folder (never the system's /etc/dovecot), with one
user whose password is in a passwd-file, Maildir storage, and a self-signed certificate
that clients trust through SSL_CERT_FILE. Dovecot runs unprivileged: as the current user,
or as `nobody` when the tests run as root (it would otherwise switch to system users).
"""

from __future__ import annotations

import datetime
import imaplib
import ipaddress
import os
import pwd
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.ports import free_port

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
USER, PASSWORD = "bounces", "imap-test-password-0123"


def _certificate(folder: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                        x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


class DovecotServer:
    def __init__(self) -> None:
        if not os.path.exists(DOVECOT):
            if os.environ.get("CI"):
                pytest.fail("CI must install Debian dovecot-imapd (.ci/run does)")
            pytest.skip("Dovecot is not installed (apt-get install dovecot-imapd)")
        self.root = Path(tempfile.mkdtemp(prefix="dovecot-", dir="/tmp"))  # not under 0700 pytest dirs
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> DovecotServer:
        as_root = os.geteuid() == 0
        user = pwd.getpwnam("nobody") if as_root else pwd.getpwuid(os.getuid())
        self.cert, key = _certificate(self.root)
        (self.root / "passwd").write_text(f"{USER}:{{PLAIN}}{PASSWORD}\n")
        (self.root / "home").mkdir()
        conf = self.root / "dovecot.conf"
        conf.write_text(f"""\
base_dir = {self.root}/run
state_dir = {self.root}/state
log_path = {self.root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = required
ssl_cert = <{self.cert}
ssl_key = <{key}
auth_mechanisms = plain
default_internal_user = {user.pw_name}
default_internal_group = {pwd.getpwuid(user.pw_uid).pw_name if not as_root else "nogroup"}
default_login_user = {user.pw_name}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {self.root}/passwd
}}
userdb {{
  driver = static
  args = uid={user.pw_uid} gid={user.pw_gid} home={self.root}/home/%u
}}
mail_location = maildir:~/Maildir
namespace inbox {{
  inbox = yes
  separator = /
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    port = 0
  }}
  inet_listener imaps {{
    port = {self.port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
service stats {{
  chroot =
}}
""")
        for p in [self.root, *self.root.rglob("*")]:
            os.chown(p, user.pw_uid, user.pw_gid) if as_root else None
        cmd = [DOVECOT, "-F", "-c", str(conf)]
        if as_root:
            cmd = ["runuser", "-u", "nobody", "--", *cmd]
        self.process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                        start_new_session=True)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"dovecot exited: {self.process.stderr.read().decode()}"  # type: ignore[union-attr]
                                   f" {self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"dovecot did not listen on {self.port}: {self.log()}")

    def log(self) -> str:
        try:
            return (self.root / "dovecot.log").read_text()
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> DovecotServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def env(self) -> dict[str, str]:
        """What a client process needs: the password, and trust in the test certificate."""
        return {"NEWSLETTER_IMAP_PASSWORD": PASSWORD, "SSL_CERT_FILE": str(self.cert)}

    def url(self, folder: str = "INBOX") -> str:
        return f"imaps://{USER}@127.0.0.1:{self.port}/{folder}"

    def client(self) -> imaplib.IMAP4_SSL:
        ctx = ssl.create_default_context(cafile=str(self.cert))
        c = imaplib.IMAP4_SSL("127.0.0.1", self.port, ssl_context=ctx, timeout=30)
        c.login(USER, PASSWORD)
        return c
