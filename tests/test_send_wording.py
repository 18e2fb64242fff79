"""What `newsletter send` says about small things (issue 10, item 20): durations, the
development-key note, how many samples a dry run writes and why."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from newsletter.commands._common import took
from tests.conftest import run

ISSUE = "issues/2011-11-28-free-ales-bialiatski.yaml"
NO_SECRET = {k: v for k, v in os.environ.items() if k not in ("NEWSLETTER_SECRET", "NEWSLETTER_OLD_SECRETS")}


@pytest.mark.parametrize(("seconds", "messages", "shown"), [
    (0.0152, 4, "15 ms"),
    (0.9994, 4, "999 ms"),
    (1.0, 4, "1.0 s (4 msg/s)"),
    (12.34, 20_000, "12.3 s (1,621 msg/s)"),
    (185.0, 1_000_000, "3 min 05 s (5,405 msg/s)"),
])
def test_durations_are_durations_and_rates_only_when_they_mean_something(seconds: float, messages: int,
                                                                         shown: str) -> None:
    assert took(seconds, messages) == shown


def test_a_small_send_says_how_long_it_took_and_no_rate(project: Path) -> None:
    r = run(["send", ISSUE, "--yes"], cwd=project, env=NO_SECRET)
    assert r.returncode == 0, r.stderr
    done = next(line for line in r.stdout.splitlines() if line.startswith("done in "))
    assert re.fullmatch(r"done in (\d+ ms|\d+\.\d s \([\d,]+ msg/s\)) via outbox:", done), done
    assert "0.0 s" not in done


def test_nothing_to_send_prints_no_development_key_note(project: Path) -> None:
    first = run(["send", ISSUE, "--yes"], cwd=project, env=NO_SECRET)
    assert first.returncode == 0 and "development key" in first.stderr  # messages left: the note is due
    again = run(["send", ISSUE, "--yes"], cwd=project, env=NO_SECRET)
    assert again.returncode == 0, again.stderr
    assert "nothing to send" in again.stdout
    assert "development key" not in again.stderr


def test_the_dry_run_says_why_it_wrote_fewer_samples_than_messages(project: Path) -> None:
    r = run(["send", ISSUE, "--dry-run"], cwd=project, env=NO_SECRET)
    assert r.returncode == 0, r.stderr
    assert ("samples        3 of the 4 messages (a dry run writes the first 3), as they would be sent: "
            "build/2011-11-28-free-ales-bialiatski/samples/") in r.stdout.splitlines()
    assert len(list((project / "build" / "2011-11-28-free-ales-bialiatski" / "samples").glob("*.eml"))) == 3
    (project / "two.csv").write_text("email,name\nada@example.org,Ada\nbob@example.org,Bob\n")
    r = run(["send", ISSUE, "--dry-run", "--subscribers", "two.csv"], cwd=project, env=NO_SECRET)
    assert ("samples        2 messages, as they would be sent: build/2011-11-28-free-ales-bialiatski/samples/"
            in r.stdout.splitlines())
