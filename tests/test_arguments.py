"""Commands take the same kinds of arguments (issue 10, item 16): issue files or folders for
build, check, screenshot, send and status; `status` alone is an overview of every issue."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.conftest import run

ISSUES = ["issues/2011-11-28-free-ales-bialiatski.yaml", "issues/2013-12-10-solidarity-with-ales-bialiatski.yaml"]


def test_check_takes_a_folder_like_build(project: Path) -> None:
    r = run(["check", "issues/"], cwd=project)
    assert r.returncode == 0, r.stderr
    # the example project's one warning (a demo sender domain), once per issue of the folder
    assert r.stderr.splitlines()[-1] == "0 errors, 2 warnings"
    assert len(r.stdout.splitlines()) == 2


def test_send_dry_run_takes_every_issue_as_init_help_shows(project: Path) -> None:
    """`newsletter send issues/*.yaml --dry-run` (init's example) once there are two issues."""
    r = run(["send", *ISSUES, "--dry-run"], cwd=project)
    assert r.returncode == 0, r.stderr
    assert [line.split(":")[0] for line in r.stdout.splitlines() if line.startswith("issue ")] == [
        "issue          2011-11-28-free-ales-bialiatski", "issue          2013-12-10-solidarity-with-ales-bialiatski"]
    assert r.stdout.count("dry run: nothing sent, nothing recorded") == 2
    assert run(["send", "issues", "--dry-run"], cwd=project).stdout == r.stdout  # a folder is the same


def test_a_send_to_the_list_takes_one_issue(project: Path) -> None:
    r = run(["send", *ISSUES, "--yes"], cwd=project)
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [
        "a send to the list takes one issue, not 2 (issues/2011-11-28-free-ales-bialiatski.yaml, "
        "issues/2013-12-10-solidarity-with-ales-bialiatski.yaml); --dry-run and --to take several"]
    assert not (project / "outbox").exists() and not (project / ".newsletter").exists()


def test_status_without_an_issue_is_an_overview_of_every_issue(project: Path) -> None:
    before = run(["status"], cwd=project)
    assert before.returncode == 0, before.stderr
    assert [line.split()[:3] for line in before.stdout.splitlines()[:2]] == [
        ["2011-11-28-free-ales-bialiatski", "not", "sent"],
        ["2013-12-10-solidarity-with-ales-bialiatski", "not", "sent"]]
    sent = run(["send", ISSUES[0], "--yes"], cwd=project)
    assert sent.returncode == 0, sent.stderr
    after = run(["status"], cwd=project)
    lines = after.stdout.splitlines()
    assert lines[0].split("  ")[0] == "2011-11-28-free-ales-bialiatski"
    assert "sent 4 · failed 0 · uncertain 0" in lines[0] and "Let’s mobilise to free Ales Bialiatski!" in lines[0]
    assert "not sent" in lines[1]
    assert lines[2].startswith("2 issues;")
    assert run(["status", "issues/"], cwd=project).stdout == after.stdout
    one = run(["status", ISSUES[0]], cwd=project)  # one issue: the detailed view, as before
    assert one.stdout.splitlines()[1].strip() == "sent 4 · pending 0 · failed 0 · uncertain 0"


def test_status_overview_of_an_empty_folder_says_so(project: Path) -> None:
    (project / "empty").mkdir()
    r = run(["status", "empty"], cwd=project)
    assert r.returncode == 1
    assert r.stderr.strip() == "empty: no issue files (*.yaml) here"


def test_init_help_examples_work_in_a_new_project(tmp_path: Path) -> None:
    r = run(["init", "news", "--sender", "news@example.org"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    root = tmp_path / "news"
    first = next((root / "issues").glob("*.yaml"))
    shutil.copy(first, root / "issues" / "2099-01-01-second.yaml")
    issues = sorted(f"issues/{p.name}" for p in (root / "issues").glob("*.yaml"))
    assert len(issues) == 2
    for args in (["build", *issues], ["send", *issues, "--dry-run"], ["check", *issues], ["status"]):
        r = run(args, cwd=root)
        assert r.returncode == 0, (args, r.stderr)
