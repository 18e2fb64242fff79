"""Shared fixtures. Real components only: files on disk, real processes, real servers."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from newsletter.config import Config, load_config
from tests.pg import pg_database, pg_server  # noqa: F401 - fixtures: a real PostgreSQL server
from tests.sendgrid_server import API_KEY, SendGridServer
from tests.smtp_server import SMTPServer
from tests.tomledit import DELETE, edit_toml, read_toml
from tests.webserver import KEYS, serve_in_thread

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
NEWSLETTER = [sys.executable, "-m", "newsletter"]


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the example project (config, issues, subscribers) in a temp folder, as cwd."""
    root = tmp_path / "project"
    root.mkdir()
    shutil.copy(REPO / "newsletter.toml", root / "newsletter.toml")
    shutil.copytree(REPO / "issues", root / "issues")
    if (REPO / "subscribers.example.csv").exists():
        shutil.copy(REPO / "subscribers.example.csv", root / "subscribers.example.csv")
    monkeypatch.chdir(root)
    return root


def run(args: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 120,
        input: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run `newsletter ARGS` as a real process; never raises on a non-zero exit."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(NEWSLETTER + args, cwd=cwd, env=full_env, capture_output=True, text=True,
                          timeout=timeout, input=input)


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    """Headless Debian Chromium driven by Playwright. Skipped only outside CI when it is absent."""
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail("CI must install Debian chromium (/usr/bin/chromium)")
        pytest.skip("Debian chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        )
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a store lives, once per implementation: a SQLite file, then the tests' real PostgreSQL."""
    if request.param == "sqlite":
        return str(tmp_path / "state.db")
    return request.getfixturevalue("pg_database")


@pytest.fixture
def store(target: str) -> Iterator[object]:
    """An open store on `target`, closed after the test (the contract suites run against both)."""
    from newsletter.store import open_store

    s = open_store(target)
    yield s
    s.close()


def single_list(root: Path) -> None:
    """Turn the example project into today's one-list project ([list]: FIDH's campaigns, no
    digest): an unsubscribe there is from everything, as it was before lists."""
    import re

    path = root / "newsletter.toml"
    edit_toml(path, {"list": read_toml(path)["lists"]["campaigns"], "lists": DELETE})
    for issue in (root / "issues").glob("*.yaml"):
        issue.write_text(re.sub(r"^list: .*\n", "", issue.read_text(), flags=re.M))


@pytest.fixture
def make_config(project: Path) -> Callable[..., Config]:
    """Build the example project's Config with changes: `settings` are newsletter.toml keys as
    edit_toml takes them ({"web.db_wait_seconds": 1}), written to the file first, so the Config
    is what a user's edited file loads as; `one_list` first makes it a one-list project."""

    def make(settings: Mapping[str, object] | None = None, *, one_list: bool = False) -> Config:
        if one_list:
            single_list(project)
        if settings:
            edit_toml(project / "newsletter.toml", settings)
        return load_config(project / "newsletter.toml")

    return make


@pytest.fixture
def config(request: pytest.FixtureRequest, make_config: Callable[..., Config]) -> Config:
    """The example project's Config. A module or test that needs another one says how with
    make_config's arguments in a marker: `pytestmark = pytest.mark.config(one_list=True)`."""
    marker = request.node.get_closest_marker("config")
    return make_config(*marker.args, **marker.kwargs) if marker else make_config()


@pytest.fixture
def server(config: Config) -> Iterator[int]:
    """The web app for `config`, served by uvicorn in this process; its port. Its signing keys
    are tests.webserver.KEYS."""
    with serve_in_thread(config, KEYS) as port:
        yield port


@pytest.fixture
def smtp_server() -> Iterator[SMTPServer]:
    """The aiosmtpd stand-in on loopback (tests/smtp_server.py), recording every delivery."""
    with SMTPServer() as s:
        yield s


@pytest.fixture
def sendgrid_server(request: pytest.FixtureRequest) -> Iterator[SendGridServer]:
    """The schema-checking SendGrid stand-in on loopback, accepting tests.sendgrid_server.API_KEY.
    A `@pytest.mark.sendgrid_server(validate=False, record="emails")` marker passes it options."""
    marker = request.node.get_closest_marker("sendgrid_server")
    with SendGridServer(api_key=API_KEY, **(marker.kwargs if marker else {})) as sg:
        yield sg


@pytest.fixture(scope="module")
def mailed_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project whose issue went out (outbox) to every reader of the bounce corpus
    (tests/bouncekit.py); sent once per module, since a send costs a second or two."""
    from tests.bouncekit import sent_project  # here: bouncekit imports this module

    return sent_project(tmp_path_factory.mktemp("sent") / "p")


@pytest.fixture
def mailed(mailed_project: Path, tmp_path: Path) -> Path:
    """This test's own copy of mailed_project, to read bounces into."""
    root = tmp_path / "p"
    shutil.copytree(mailed_project, root)
    return root


@pytest.fixture(scope="session")
def private_key() -> ec.EllipticCurvePrivateKey:
    """A P-256 key pair standing in for SendGrid's Event Webhook signing key."""
    return ec.generate_private_key(ec.SECP256R1())
