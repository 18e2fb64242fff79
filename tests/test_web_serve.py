"""`newsletter serve` as a real process: refuses to start without its key, serves with it,
accepts links signed with keys listed in NEWSLETTER_OLD_SECRETS."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from newsletter.audience.secrets import SigningKeys
from newsletter.audience.tokens import make_token
from newsletter.config import load_config
from tests.conftest import run, single_list
from tests.ports import free_port
from tests.webserver import one_click, request, serve_in_process

NEW = "the-new-signing-key-0123456789abcdef"
OLD = "the-old-signing-key-0123456789abcdef"


@pytest.fixture(autouse=True)
def _one_list(project: Path) -> None:
    """One list: an unsubscribe is from everything (several lists: tests/test_lists_web.py)."""
    single_list(project)


def test_serve_refuses_to_start_without_a_secret(project: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("NEWSLETTER_SECRET", "NEWSLETTER_OLD_SECRETS")}
    r = subprocess.run([sys.executable, "-m", "newsletter", "serve", "--port", str(free_port())], cwd=project,
                       env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "NEWSLETTER_SECRET is not set" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run([sys.executable, "-m", "uvicorn", "--factory", "newsletter.audience.web:app_factory",
                        "--port", str(free_port())], cwd=project, env=env, capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 1 and "NEWSLETTER_SECRET is not set" in r.stderr
    r = run(["serve", "--host", "0.0.0.0", "--development-key"], project)
    assert r.returncode == 1 and "loopback" in r.stderr


def test_serve_accepts_current_and_listed_old_keys(project: Path) -> None:
    config = load_config(project / "newsletter.toml")
    new_link = "/unsubscribe/" + make_token(SigningKeys(NEW.encode(), (), False), "new@example.org", config.list_id)
    old_link = "/unsubscribe/" + make_token(SigningKeys(OLD.encode(), (), False), "old@example.org", config.list_id)
    with serve_in_process(project, {"NEWSLETTER_SECRET": NEW, "NEWSLETTER_OLD_SECRETS": f"unused-key-abcdef,{OLD}"}) \
            as served:
        port = served.port
        assert request(port, "GET", new_link).status == 200
        assert one_click(port, new_link).status == 200
        assert one_click(port, old_link).status == 200
    assert NEW not in served.output() and OLD not in served.output()
    assert "/unsubscribe/<token> 200" in served.output() and new_link not in served.output()  # tokens name readers
    with serve_in_process(project, {"NEWSLETTER_SECRET": NEW, "NEWSLETTER_OLD_SECRETS": ""}) as served:
        port = served.port
        tampered = new_link[:-1] + ("A" if new_link[-1] != "A" else "B")
        assert one_click(port, tampered).status == 400
        assert one_click(port, old_link).status == 400  # old key no longer listed
    conn = sqlite3.connect(config.database)
    assert conn.execute("SELECT email, source FROM suppressions ORDER BY email").fetchall() == [
        ("new@example.org", "one-click"), ("old@example.org", "one-click")]
    conn.close()


def test_serve_and_send_refuse_a_weak_old_key_naming_the_variable_not_the_value(project: Path) -> None:
    weak = {"NEWSLETTER_SECRET": NEW, "NEWSLETTER_OLD_SECRETS": f"{OLD},sh0rt-old-key"}
    r = run(["serve", "--port", str(free_port())], project, env=weak, timeout=30)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "NEWSLETTER_OLD_SECRETS: key 2 of 2 is too short" in r.stderr
    assert "sh0rt-old-key" not in r.stdout + r.stderr and OLD not in r.stdout + r.stderr
    r = run(["send", "issues/2011-11-28-free-ales-bialiatski.yaml", "--backend", "smtp", "--yes"], project, env=weak)
    assert r.returncode == 1 and "NEWSLETTER_OLD_SECRETS: key 2 of 2 is too short" in r.stderr
    assert "sh0rt-old-key" not in r.stdout + r.stderr and "Traceback" not in r.stderr
    r = subprocess.run([sys.executable, "-m", "uvicorn", "--factory", "newsletter.audience.web:app_factory",
                        "--port", str(free_port())], cwd=project, env={**os.environ, **weak},
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "NEWSLETTER_OLD_SECRETS: key 2 of 2 is too short" in r.stderr
    assert "sh0rt-old-key" not in r.stdout + r.stderr
