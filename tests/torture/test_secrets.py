"""The signing key, the SMTP password and the SendGrid key never appear in anything a run produces.

Known secret values go in through the environment; every path that could leak them is
run for real — build, dry run (with its sample .eml files), outbox, --to, SMTP with
AUTH, SendGrid, status, serve, wrong password, wrong key, unreachable servers — and
then everything produced is searched: stdout, stderr, the serve log, every file in the
project (ledger SQLite file with its -wal/-shm, .eml files, build outputs, locks), what
the SMTP server received (except the AUTH exchange, where the password belongs), the
SendGrid request bodies, exception texts and reprs, and Python logging at DEBUG.
Each secret is also looked for base64-encoded and URL-quoted.
"""

from __future__ import annotations

import base64
import dataclasses
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from newsletter.audience.secrets import signing_keys
from newsletter.audience.tokens import make_token
from newsletter.compose.build import build_issue
from newsletter.config import load_config
from newsletter.deliver.backends import get_backend
from newsletter.deliver.send import SendOptions, send_issue
from newsletter.errors import NewsletterError
from newsletter.store import open_store
from tests.conftest import run
from tests.ports import free_port
from tests.sendgrid_server import SendGridServer, refuse
from tests.sendkit import SLUG, make_project
from tests.smtp_server import SMTPServer
from tests.tomledit import edit_toml
from tests.torture.figures import count, scale

pytestmark = pytest.mark.torture

ISSUE = f"issues/{SLUG}.yaml"
SIGNING = "SIGNINGKEY-" + secrets.token_hex(16)
OLD_SIGNING = "OLDSIGNINGKEY-" + secrets.token_hex(16)
SMTP_PASSWORD = "SMTPPASSWORD-" + secrets.token_hex(16)
SENDGRID_KEY = "SG.SENDGRIDKEY-" + secrets.token_hex(16)
SECRETS = {"NEWSLETTER_SECRET": SIGNING, "NEWSLETTER_OLD_SECRETS": OLD_SIGNING,
           "NEWSLETTER_SMTP_PASSWORD": SMTP_PASSWORD, "SENDGRID_API_KEY": SENDGRID_KEY}


def forms(secret: str) -> list[bytes]:
    """The secret as it could leak: raw, base64 (as in AUTH or a JSON blob), URL-quoted, hex."""
    raw = secret.encode()
    return [raw, base64.b64encode(raw).rstrip(b"="), base64.urlsafe_b64encode(raw).rstrip(b"="),
            urllib.parse.quote(secret).encode(), raw.hex().encode()]


class Evidence:
    """Everything a run produced, by where it came from."""

    def __init__(self) -> None:
        self.items: list[tuple[str, bytes]] = []

    def add(self, where: str, data: bytes | str) -> None:
        self.items.append((where, data.encode("utf-8", "replace") if isinstance(data, str) else data))

    def add_tree(self, root: Path) -> None:
        for p in sorted(root.rglob("*")):
            if p.is_file():
                self.add(f"file {p.relative_to(root)}", p.read_bytes())

    def leaks(self) -> list[str]:
        found = []
        for name, secret in SECRETS.items():
            for form in forms(secret):
                for where, data in self.items:
                    if form in data:
                        found.append(f"{name} ({form[:12]!r}...) in {where}")
        return found


def _cli(ev: Evidence, label: str, args: list[str], root: Path, env: dict[str, str] | None = None,
         expect: int | None = 0) -> subprocess.CompletedProcess[str]:
    r = run(args, cwd=root, env={**SECRETS, **(env or {})})
    ev.add(f"{label}: stdout", r.stdout)
    ev.add(f"{label}: stderr", r.stderr)
    assert "Traceback" not in r.stderr, (label, r.stderr[-2000:])
    if expect is not None:
        assert r.returncode == expect, (label, r.returncode, r.stdout[-1000:], r.stderr[-1000:])
    count("secrets: runs searched", label)
    return r


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_no_secret_in_anything_a_run_produces(tmp_path: Path) -> None:
    ev = Evidence()
    with SMTPServer(auth=("newsletter", SMTP_PASSWORD), pipelining=True) as smtp, \
            SendGridServer(api_key=SENDGRID_KEY) as sg:
        root = make_project(tmp_path / "p", subscribers=40, smtp_port=smtp.port,
                            settings={"sendgrid.host": sg.url, "smtp.username": "newsletter"})
        # one ledger per backend: the ledger is per issue, so a send through one backend
        # would leave nothing for the next
        for name in ("outbox", "smtp", "sendgrid"):
            shutil.copy(root / "newsletter.toml", root / f"{name}.toml")
            edit_toml(root / f"{name}.toml", {"database": f".newsletter/{name}.db"})

        _cli(ev, "build", ["build", ISSUE], root)
        _cli(ev, "dry run", ["send", ISSUE, "--dry-run"], root)
        _cli(ev, "dry run smtp", ["send", ISSUE, "--dry-run", "--backend", "smtp"], root)
        _cli(ev, "outbox send", ["send", ISSUE, "--backend", "outbox", "--yes", "--config", "outbox.toml"], root)
        _cli(ev, "--to smtp", ["send", ISSUE, "--backend", "smtp", "--to", "editor@example.org"], root)
        _cli(ev, "smtp send", ["send", ISSUE, "--backend", "smtp", "--yes", "--config", "smtp.toml"], root)
        _cli(ev, "status", ["status", ISSUE, "--config", "smtp.toml"], root)
        # wrong password: refused, and the message must not show what was tried
        _cli(ev, "smtp wrong password", ["send", ISSUE, "--backend", "smtp", "--to", "x@example.org"], root,
             env={"NEWSLETTER_SMTP_PASSWORD": SMTP_PASSWORD + "-wrong"}, expect=1)
        _cli(ev, "sendgrid send", ["send", ISSUE, "--backend", "sendgrid", "--yes", "--config", "sendgrid.toml"], root)
        sg.script(refuse(401, "The provided authorization grant is invalid, expired, or revoked"))
        _cli(ev, "sendgrid refused", ["send", ISSUE, "--backend", "sendgrid", "--to", "y@example.org"], root,
             expect=1)
        _cli(ev, "sendgrid wrong key", ["send", ISSUE, "--backend", "sendgrid", "--to", "y@example.org"], root,
             env={"SENDGRID_API_KEY": SENDGRID_KEY + "x"}, expect=1)
        dead = free_port()
        broken = root / "broken.toml"
        shutil.copy(root / "newsletter.toml", broken)
        edit_toml(broken, {"smtp.port": dead, "sendgrid.host": f"http://127.0.0.1:{dead}"})
        _cli(ev, "smtp unreachable", ["send", ISSUE, "--backend", "smtp", "--to", "z@example.org",
                                      "--config", str(broken)], root, expect=1)
        if scale() == "full":  # connection refused is retried with backoff: ~15 s
            _cli(ev, "sendgrid unreachable", ["send", ISSUE, "--backend", "sendgrid", "--to", "z@example.org",
                                              "--config", str(broken)], root, expect=1)
        _serve(ev, root)

        # what went over the wire, except the AUTH exchange itself
        for d in smtp.deliveries:
            ev.add(f"smtp message to {d.rcpt}", d.data)
        for i, body in sg.bodies.items():
            ev.add(f"sendgrid request {i}", repr(body))
        for r in sg.requests:
            ev.add(f"sendgrid log {r.index}", repr(r))
        assert smtp.deliveries and sg.accepted, "the sends must really have happened"

    _in_process(ev, root, tmp_path)
    ev.add_tree(root)
    assert any(w.startswith("file .newsletter/smtp.db") for w, _ in ev.items)
    assert any(w.endswith(".eml") for w, _ in ev.items)
    leaks = ev.leaks()
    count("secrets: places searched", "items (outputs, files, messages, requests, logs)", len(ev.items))
    count("secrets: leaks found", "total", len(leaks))
    assert not leaks, leaks


def _serve(ev: Evidence, root: Path) -> None:
    port = free_port()
    log = root / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "newsletter", "serve", "--port", str(port)], cwd=root,
                                env={**os.environ, **SECRETS}, stdout=out, stderr=subprocess.STDOUT)
        try:
            base = f"http://127.0.0.1:{port}"
            for _ in range(100):
                try:
                    urllib.request.urlopen(base + "/unsubscribe/x", timeout=1)
                except urllib.error.HTTPError:
                    break
                except OSError:
                    time.sleep(0.1)
            config = load_config(root / "newsletter.toml")
            os.environ.update(SECRETS)
            try:
                token = make_token(signing_keys(), "reader000001@example.org", config.list_id)
            finally:
                for k in SECRETS:
                    os.environ.pop(k, None)
            one_click = b"List-Unsubscribe=One-Click"
            for path, data in [(f"/unsubscribe/{token}", None), (f"/unsubscribe/{token}", one_click),
                               ("/unsubscribe/" + token[:-3] + "AAA", one_click), ("/webhooks/sendgrid", b"[]")]:
                try:
                    with urllib.request.urlopen(urllib.request.Request(base + path, data=data), timeout=5) as resp:
                        ev.add(f"serve answer {path[:30]}", resp.read())
                except urllib.error.HTTPError as e:
                    ev.add(f"serve answer {path[:30]}", e.read())
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(10)
    ev.add("serve log", log.read_bytes())
    count("secrets: runs searched", "serve")


def _in_process(ev: Evidence, root: Path, tmp_path: Path) -> None:
    """Library calls with DEBUG logging on (third-party libraries included), and exception texts."""
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(f"{record.name}: {record.getMessage()}")

    handler = Keep(level=logging.DEBUG)
    rootlog = logging.getLogger()
    old_level = rootlog.level
    rootlog.addHandler(handler)
    rootlog.setLevel(logging.DEBUG)
    saved = {k: os.environ.get(k) for k in SECRETS}
    os.environ.update(SECRETS)
    try:
        with SMTPServer(auth=("newsletter", SMTP_PASSWORD)) as smtp, SendGridServer(api_key=SENDGRID_KEY) as sg:
            config = load_config(root / "newsletter.toml")
            config = dataclasses.replace(config, database=tmp_path / "inproc.db",
                                         smtp={**config.smtp, "port": smtp.port},
                                         sendgrid={**config.sendgrid, "host": sg.url})
            built = build_issue(root / "issues" / f"{SLUG}.yaml", config, write=False)
            conn = open_store(config.database)
            for name in ("smtp", "sendgrid"):
                backend = get_backend(name, config)
                ev.add(f"repr({name} backend)", repr(backend))
                report = send_issue(built, SendOptions(backend), config.subscribers, conn, keys=signing_keys())
                ev.add(f"{name} report", repr(report))
            conn.close()
            ev.add("repr(signing keys)", repr(signing_keys()))
            # exception texts: refusals and misconfiguration
            sg.script(refuse(401, "The provided authorization grant is invalid, expired, or revoked"))
            for name, settings in [("sendgrid", {}), ("smtp", {"port": free_port()})]:
                cfg = dataclasses.replace(config, smtp={**config.smtp, **settings})
                try:
                    b = get_backend(name, cfg)
                    conn = open_store(tmp_path / f"{name}-err.db")
                    send_issue(built, SendOptions(b), config.subscribers, conn, keys=signing_keys())
                except NewsletterError as e:
                    ev.add(f"{name} exception", f"{e!s} {e!r} {e.lines()}")
            os.environ["NEWSLETTER_SECRET"] = "short"
            try:
                signing_keys()
            except Exception as e:  # noqa: BLE001
                ev.add("short key exception", f"{e!s} {e!r}")
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        rootlog.removeHandler(handler)
        rootlog.setLevel(old_level)
    assert records, "DEBUG logging captured nothing: the test would prove nothing"
    ev.add("python logging at DEBUG", "\n".join(records))
    count("secrets: runs searched", "in-process sends with DEBUG logging")
