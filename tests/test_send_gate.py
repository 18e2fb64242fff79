"""`send` runs `check` first: a send to the list refuses on errors unless --force."""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import run
from tests.tomledit import edit_toml

ISSUE = "issues/2011-11-28-free-ales-bialiatski.yaml"


def _real_sender(project: Path) -> None:
    """A real sender domain: the example.org links left in the issue become check errors."""
    edit_toml(project / "newsletter.toml", {"sender.address": "news@fidh.net"})


def test_send_refuses_on_check_errors_and_sends_nothing(project: Path) -> None:
    _real_sender(project)
    r = run(["send", ISSUE, "--yes"], cwd=project)
    assert r.returncode == 1
    assert "error:" in r.stderr and "example" in r.stderr
    assert "--force" in r.stderr.splitlines()[-1]
    assert not (project / "outbox").exists()
    assert not (project / ".newsletter").exists(), "nothing recorded either"


def test_dry_run_shows_the_errors_but_does_not_refuse(project: Path) -> None:
    _real_sender(project)
    r = run(["send", ISSUE, "--dry-run"], cwd=project)
    assert r.returncode == 0, r.stderr
    assert "would refuse without --force" in r.stderr


def test_force_sends_anyway(project: Path) -> None:
    _real_sender(project)
    plan = run(["send", ISSUE, "--dry-run"], cwd=project)
    to_send = int(re.search(r"to send\s+([\d,]+)", plan.stdout).group(1).replace(",", ""))
    assert to_send > 0
    r = run(["send", ISSUE, "--yes", "--force"], cwd=project)
    assert r.returncode == 0, r.stdout + r.stderr
    sent = list((project / "outbox").rglob("*.eml"))
    assert len(sent) == to_send


def test_the_example_project_passes_the_gate(project: Path) -> None:
    r = run(["send", ISSUE, "--yes"], cwd=project)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "error:" not in r.stderr
