"""`newsletter check --online` against a real HTTP server on loopback."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from newsletter.compose.build import build_issue
from newsletter.config import load_config
from newsletter.lint import check_online
from tests.test_check import FIXTURES
from tests.tomledit import DELETE, edit_toml

SEEN: list[tuple[str, str]] = []


class Handler(BaseHTTPRequestHandler):
    def _answer(self, body: bool) -> None:
        SEEN.append((self.command, self.path))
        if self.path == "/slow":
            time.sleep(1.5)
        if self.path == "/missing":
            self.send_response(404)
        elif self.path == "/no-head" and self.command == "HEAD":
            self.send_response(405)
        else:
            self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        if body:
            self.wfile.write(b"ok")

    def do_HEAD(self) -> None:  # noqa: N802
        self._answer(False)

    def do_GET(self) -> None:  # noqa: N802
        self._answer(True)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def links_server() -> Iterator[str]:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.server_close()


def test_online_reports_links_that_do_not_answer(links_server: str, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "p"
    (root / "issues").mkdir(parents=True)
    # no website: every link of this email is on loopback, nothing else is contacted
    shutil.copy(FIXTURES / "newsletter.toml", root / "newsletter.toml")
    edit_toml(root / "newsletter.toml", {"organisation.website": DELETE})
    (root / "issues" / "links.yaml").write_text(f"""\
subject: Links
preheader: Do they answer?
date: 2011-11-28
blocks:
  - type: section
    body: |
      [fine]({links_server}/ok) and [gone]({links_server}/missing)
      and [picky]({links_server}/no-head) and [slow]({links_server}/slow)
    image: {{src: "{links_server}/img.png", alt: "An image", width: 100}}
""")
    monkeypatch.chdir(root)
    built = build_issue(Path("issues/links.yaml"), load_config(root / "newsletter.toml"), write=False)
    SEEN.clear()
    started = time.monotonic()
    findings = check_online(built, timeout=0.5, workers=4)
    assert time.monotonic() - started < 5
    got = {str(f) for f in findings}
    assert got == {
        f"issues/links.yaml:7: error: link answers HTTP 404: {links_server}/missing [online]",
        f"issues/links.yaml:8: error: link does not answer (timed out): {links_server}/slow [online]",
    }
    assert ("HEAD", "/ok") in SEEN and ("GET", "/ok") not in SEEN  # HEAD first
    assert ("GET", "/no-head") in SEEN  # a server that refuses HEAD gets a GET
    assert ("HEAD", "/img.png") in SEEN  # images too
    assert all(path.startswith("/") for _, path in SEEN)
