"""The web app served by its real server (uvicorn) on a free loopback port, for tests.

`serve_in_thread` runs uvicorn inside the test process (fast to start, easy to reach the
app's state); `serve_in_process` runs `newsletter serve` as its own process, the way an
organisation runs it. `request` is a tiny stdlib client that never raises on 4xx/5xx.
"""

from __future__ import annotations

import http.client as httpclient
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from newsletter.audience.secrets import SigningKeys
from newsletter.config import Config
from tests.ports import free_port

#: The signing keys of the app the `server` fixture serves: a current key and a rotated-out
#: one it still accepts. ENV gives a `newsletter serve` process the same keys.
KEY = b"current-key-" + b"k" * 32
OLD = b"rotated-out-key-" + b"o" * 32
KEYS = SigningKeys(KEY, (OLD,), False)
ENV = {"NEWSLETTER_SECRET": KEY.decode(), "NEWSLETTER_OLD_SECRETS": OLD.decode()}


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")


def request(port: int, method: str, path: str, body: bytes | str | list[bytes] | None = None,
            headers: dict[str, str] | None = None, timeout: float = 30) -> Answer:
    """One request on a fresh connection; the answer whatever its status. A list body is sent chunked.

    Like a browser, it reads the answer even when the server stops reading the body early."""
    conn = httpclient.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        data = body.encode() if isinstance(body, str) else iter(body) if isinstance(body, list) else body
        try:
            conn.request(method, path, body=data, headers=headers or {})
        except (BrokenPipeError, ConnectionResetError):
            # The server may answer (413) and close before the whole body is written; what it
            # said is already in our receive buffer, so read it rather than fail on the write.
            if conn.sock is None:
                raise
        r = conn.getresponse()
        return Answer(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
    finally:
        conn.close()


def one_click(port: int, path: str) -> Answer:
    """What Gmail sends for RFC 8058 one-click unsubscribe."""
    return request(port, "POST", path, "List-Unsubscribe=One-Click",
                {"Content-Type": "application/x-www-form-urlencoded"})


@contextmanager
def serve_in_thread(config: Config, keys: SigningKeys) -> Iterator[int]:
    """uvicorn serving create_app(config) in a thread; yields the port."""
    from newsletter.audience.web import create_app

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(config, keys=keys), log_level="warning", access_log=False,
                                           lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@dataclass
class Served:
    port: int
    log: Path

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


@contextmanager
def serve_in_process(cwd: Path, env: dict[str, str], args: tuple[str, ...] = (), *,
                     factory: bool = False) -> Iterator[Served]:
    """`newsletter serve` as a real process on a free port, its output in a log file next to `cwd`.
    With `factory`, plain `uvicorn --factory newsletter.audience.web:app_factory` instead."""
    port = free_port()
    log = cwd.parent / f"serve-{port}.log"
    command = ["uvicorn", "--factory", "newsletter.audience.web:app_factory"] if factory else ["newsletter", "serve"]
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", *command, "--host", "127.0.0.1",
                                 "--port", str(port), *args], cwd=cwd, env={**os.environ, **env},
                                stdout=out, stderr=subprocess.STDOUT, text=True)
    served = Served(port, log)
    try:
        deadline = time.monotonic() + 20
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"newsletter serve exited {proc.returncode}: {served.output()}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("newsletter serve did not start") from None
                time.sleep(0.05)
        yield served
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
