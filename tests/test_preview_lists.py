"""`newsletter preview` shows the previewed issue's list: its sender, and one of its own readers,
from its CSV source or its confirmed members in the store (SQLite and PostgreSQL), as `send`
would mail them. Real preview processes on loopback, real stores filled by `subscribers import`."""

from __future__ import annotations

import json
import os
import re
import select
import subprocess
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from newsletter.compose.build import SAMPLE_RECIPIENT
from newsletter.config import load_config
from newsletter.editor.preview import PreviewError, recipient_values
from tests.conftest import NEWSLETTER, run
from tests.tomledit import DELETE, edit_toml

SECRET = {"NEWSLETTER_SECRET": "preview-lists-test-secret-0123456789"}
ISSUE = """\
subject: "Digest for {{{{ name }}}}"
date: 2013-12-10
list: {list}
blocks:
  - type: section
    body: Dear {{{{ name }}}} in {{{{ city | default("your town") }}}}, this is the issue.
"""
OLGA = "olga.karach@example.org"


def _issue(project: Path, key: str) -> str:
    path = project / "issues" / f"live-{key}.yaml"
    path.write_text(ISSUE.format(list=key), encoding="utf-8")
    return f"issues/{path.name}"


def _import(project: Path, key: str, rows: str, env: dict[str, str]) -> None:
    csv = project / f"import-{key}.csv"
    csv.write_text("email,name,language,city\n" + rows, encoding="utf-8")
    r = run(["subscribers", "import", csv.name, "--list", key], cwd=project, env={**SECRET, **env})
    assert r.returncode == 0, r.stderr


@contextmanager
def _preview(project: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[dict[str, Any]]:
    """A real `newsletter preview` on a port the OS picks; yields its first build's state and email."""
    with subprocess.Popen([*NEWSLETTER, "preview", *args, "--port", "0"], cwd=project, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True,
                          env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}) as proc:
        try:
            ready, _, _ = select.select([proc.stdout], [], [], 60)
            line = proc.stdout.readline() if ready else ""  # type: ignore[union-attr]
            m = re.match(r"preview  (http://127\.0\.0\.1:\d+/)", line)
            assert m, (line, proc.poll())
            with urllib.request.urlopen(m.group(1) + "state.json", timeout=10) as r:
                state = json.loads(r.read())
            with urllib.request.urlopen(m.group(1) + "email.html", timeout=10) as r:
                state["html"] = r.read().decode()
            yield state
        finally:
            proc.kill()  # a preview keeps nothing to flush; leaving the `with` waits for it


def test_as_finds_a_reader_who_is_only_in_the_store(project: Path, target: str) -> None:
    """Olga signed up for the digest (she is in the store, not in the CSV): `--as` finds her on
    the digest, with Viasna as the sender, and not on FIDH's campaigns, which she is not on."""
    env = {"NEWSLETTER_DATABASE": target}
    _import(project, "digest", f"{OLGA},Olga Karach,be,Vitebsk\n", env)
    digest = _issue(project, "digest")
    with _preview(project, digest, "--as", OLGA, env=env) as state:
        assert state["errors"] == [] and state["to"] == OLGA
        assert (state["from_name"], state["from_address"]) == ("Viasna", "digest@spring96.example.org")
        assert state["subject"] == "Digest for Olga Karach"
        assert "Dear Olga Karach in Vitebsk" in state["html"]
    r = run(["preview", _issue(project, "campaigns"), "--port", "0", "--as", OLGA], cwd=project, env=env)
    assert r.returncode == 1
    assert r.stderr.strip() == (f"--as {OLGA}: no such reader on the list 'campaigns' (FIDH campaign news): "
                                "not in subscribers.example.csv, nor a confirmed member in the store")
    assert r.stdout == ""


def test_the_sample_reader_comes_from_the_issues_list(project: Path) -> None:
    """The digest has its own CSV source: its preview shows its first reader, and the campaigns'
    preview the first of the project's file (before: both showed the project's)."""
    (project / "digest.csv").write_text(f"email,name,city\n{OLGA},Olga Karach,Vitebsk\n", encoding="utf-8")
    edit_toml(project / "newsletter.toml", {"lists.digest.subscribers": "digest.csv"})
    with _preview(project, _issue(project, "digest")) as state:
        assert state["to"] == OLGA and "Dear Olga Karach in Vitebsk" in state["html"]
    with _preview(project, _issue(project, "campaigns")) as state:
        assert state["to"] == "ada@example.org" and "Dear Ada Lovelace in London" in state["html"]
        assert state["from_name"] == "FIDH"
    r = run(["preview", _issue(project, "digest"), "--port", "0", "--as", "ada@example.org"], cwd=project)
    assert r.returncode == 1 and r.stderr.strip() == (
        "--as ada@example.org: no such reader on the list 'digest' (Viasna digest): not in digest.csv, "
        "nor a confirmed member in the store")


def test_a_store_only_list_without_a_store_shows_the_sample_and_creates_nothing(project: Path) -> None:
    toml = project / "newsletter.toml"
    edit_toml(toml, {"subscribers": DELETE})  # no CSV source: the store is the lists' only one
    with _preview(project, _issue(project, "digest")) as state:
        assert state["errors"] == [] and state["to"] == SAMPLE_RECIPIENT["email"]
    assert not (project / ".newsletter").exists()  # a preview never creates the store
    r = run(["preview", _issue(project, "digest"), "--port", "0", "--as", OLGA], cwd=project)
    assert r.returncode == 1 and r.stderr.strip() == (
        f"--as {OLGA}: no such reader on the list 'digest' (Viasna digest): not a confirmed member in the store")
    assert not (project / ".newsletter").exists()
    _import(project, "digest", f"{OLGA},Olga Karach,be,Vitebsk\n", {})
    with _preview(project, _issue(project, "digest")) as state:  # the list's first confirmed member
        assert state["to"] == OLGA and "Dear Olga Karach in Vitebsk" in state["html"]


def test_only_confirmed_members_of_that_list_are_readers(project: Path) -> None:
    """In-process, on the real SQLite store: pending signups and those who left are not readers."""
    from newsletter.store import open_store

    _import(project, "digest", f"{OLGA},Olga Karach,be,Vitebsk\nleft@example.org,Left,en,Minsk\n", {})
    store = open_store(load_config(project / "newsletter.toml"))
    try:
        store.set_membership("digest", "left@example.org", "unsubscribed")
        store.signup("digest", "pending@example.org", "Pending", "en", form_url="https://news.example.org/subscribe",
                     wording="v1", ip_hash="", forget_hashes=(), resend_after="")
    finally:
        store.close()
    config = load_config(project / "newsletter.toml").for_list("digest")
    assert recipient_values(config, OLGA.upper(), "en")[0] == OLGA  # addresses compare case-insensitively
    for email in ("left@example.org", "pending@example.org"):
        with pytest.raises(PreviewError, match="no such reader on the list 'digest'"):
            recipient_values(config, email, "en")
    with pytest.raises(PreviewError, match="no such reader on the list 'campaigns'"):
        recipient_values(config.for_list("campaigns"), "olga.karach@example.org", "en")


def test_an_unreadable_store_falls_back_to_the_sample_reader_unless_asked_for(project: Path) -> None:
    """A store that cannot be read (a folder where the SQLite file should be): the editor still sees
    the issue with the sample reader, and is told why; `--as` is an error naming the database."""
    toml = project / "newsletter.toml"
    edit_toml(toml, {"subscribers": DELETE})  # no CSV source: the store is the lists' only one
    (project / ".newsletter" / "state.db").mkdir(parents=True)
    config = load_config(toml).for_list("digest")
    said: list[str] = []
    assert recipient_values(config, None, "en", said.append)[0] == SAMPLE_RECIPIENT["email"]
    assert len(said) == 1 and said[0].startswith("preview: the sample reader is shown: ") and "state.db" in said[0]
    r = run(["preview", _issue(project, "digest"), "--port", "0", "--as", OLGA], cwd=project)
    assert r.returncode == 1 and "state.db" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
