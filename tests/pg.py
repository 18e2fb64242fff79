"""A real PostgreSQL server for the tests, started by them: Debian's `initdb` + `pg_ctl` in a
temporary folder, on a free loopback port, torn down after the session.

When the tests run as root (CI containers), the server runs as `nobody` (PostgreSQL refuses
to run as root), from a folder it owns. Each test gets a fresh database (`pg_database`).
Missing binaries skip the PostgreSQL tests with the reason, except under CI=1, where they
fail: CI must install Debian `postgresql` (.ci/run does). bench/postgres.py starts its
server the same way (`start_server(durable=True)`: fsync on, as a real server runs).

    def test_x(pg_database: str) -> None:   # a postgresql:// URL (with its password)
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.ports import free_port

USER = "newsletter"
PASSWORD = "pg-test-password-7f3a9c"  # the tests' own throwaway server


def bindir() -> Path | None:
    """The newest installed PostgreSQL's bin folder (Debian keeps them out of PATH)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    which = shutil.which("pg_ctl")
    return Path(which).parent if which else None


class PgMissing(Exception):  # noqa: N818 - reads as `except PgMissing`
    """The PostgreSQL server binaries are not installed."""


@dataclass
class PgServer:
    bin: Path
    root: Path
    port: int
    run_as: str | None
    durable: bool = False
    _ids = itertools.count(1)

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def sockets(self) -> Path:
        return self.root / "sockets"

    def url(self, database: str = "postgres", *, password: str | None = PASSWORD, user: str = USER) -> str:
        auth = f"{user}:{password}" if password is not None else user
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{database}"

    def _cmd(self, *args: str) -> list[str]:
        return ["runuser", "-u", self.run_as, "--", *args] if self.run_as else list(args)

    def ctl(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self._cmd(str(self.bin / "pg_ctl"), "-D", str(self.data), *args),
                              capture_output=True, text=True, timeout=timeout)

    def start(self) -> None:
        # the tests' server need not survive a power cut (a process crash it does survive);
        # a durable one (the benchmarks') keeps PostgreSQL's defaults: fsync, full pages
        speed = "" if self.durable else " -c fsync=off -c full_page_writes=off"
        options = (f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories={self.sockets}"
                   f" -c max_connections=200 -c shared_buffers=128MB -c log_min_messages=warning{speed}")
        r = self.ctl("start", "-w", "-t", "60", "-l", str(self.root / "server.log"), "-o", options)
        if r.returncode != 0:
            raise RuntimeError(f"pg_ctl start failed: {r.stdout}{r.stderr}{self.log()}")

    def stop(self, mode: str = "fast") -> None:
        self.ctl("stop", "-w", "-m", mode)

    def restart(self, mode: str = "fast") -> None:
        """Stop and start again on the same port: every connection is cut."""
        self.stop(mode)
        self.start()

    def log(self) -> str:
        try:
            return (self.root / "server.log").read_text()[-3000:]
        except OSError:
            return ""

    def new_database(self) -> str:
        """A fresh, empty database; returns its URL."""
        import psycopg

        name = f"t{os.getpid()}_{next(self._ids)}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


def start_server(*, durable: bool = False) -> PgServer:
    """initdb + pg_ctl start in a new temporary folder; raises PgMissing without the binaries."""
    b = bindir()
    if b is None or not (b / "initdb").exists():
        raise PgMissing("PostgreSQL server binaries not found (apt-get install postgresql)")
    run_as = "nobody" if os.geteuid() == 0 else None
    root = Path(tempfile.mkdtemp(prefix="newsletter-pg-"))
    (root / "sockets").mkdir()
    pwfile = root / "pwfile"
    pwfile.write_text(PASSWORD + "\n")
    if run_as:
        who = pwd.getpwnam(run_as)
        for p in (root, root / "sockets", pwfile):
            os.chown(p, who.pw_uid, who.pw_gid)
    server = PgServer(b, root, 0, run_as, durable)
    r = subprocess.run(server._cmd(str(b / "initdb"), "-D", str(server.data), "-U", USER, "--pwfile", str(pwfile),
                                   "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8",
                                   "--locale=C", "--no-sync"),
                       capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"initdb failed: {r.stdout}{r.stderr}")
    for attempt in range(5):  # a free port may be taken between choosing and binding it
        server.port = free_port()
        try:
            server.start()
            return server
        except RuntimeError:
            if attempt == 4:
                shutil.rmtree(root, ignore_errors=True)
                raise
            time.sleep(0.2)
    raise AssertionError("unreachable")


def remove(server: PgServer) -> None:
    server.stop("immediate")
    shutil.rmtree(server.root, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    try:
        server = start_server()
    except PgMissing as e:
        if os.environ.get("CI"):
            pytest.fail(f"CI must install Debian postgresql: {e}")
        pytest.skip(str(e))
    try:
        yield server
    finally:
        remove(server)


@pytest.fixture
def pg_database(pg_server: PgServer) -> str:
    """A postgresql:// URL of a fresh database on the session's server."""
    return pg_server.new_database()
