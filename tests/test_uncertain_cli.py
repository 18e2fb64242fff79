"""`--resend-uncertain`: the end-of-run hint is honest about what resending costs, and
`status --uncertain` lists the readers it would mail again."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import run
from tests.sendkit import SLUG, address, make_project
from tests.smtp_server import SMTPServer

SECRET = {"NEWSLETTER_SECRET": "uncertain-test-secret-0123456789abcdef"}
ISSUE = f"issues/{SLUG}.yaml"


def test_uncertain_readers_are_listed_and_the_hint_says_what_a_resend_costs(tmp_path: Path) -> None:
    cut = {address(3): 1, address(6): 1}
    with SMTPServer(drop_after_data=cut) as server:
        root = make_project(tmp_path / "p", subscribers=10, smtp_port=server.port)
        r = run(["send", ISSUE, "--backend", "smtp", "--yes"], cwd=root, env=SECRET)
        assert r.returncode == 1, r.stdout + r.stderr
        assert "sent 8 · failed 0 · uncertain 2" in r.stdout
        hint = " ".join(r.stderr.split())
        assert "2 uncertain: their hand-off was cut before the answer came, and most such readers usually did " \
               "get the message" in hint
        assert f"newsletter status {ISSUE} --uncertain" in hint
        assert "a duplicate for each who already has it" in hint
        assert "run the same command again" not in hint, "a rerun does not resend them"
        assert all(server.count(a) == 1 for a in cut), "the server did take them: the hint is right"

        listed = run(["status", ISSUE, "--uncertain"], cwd=root)
        assert listed.returncode == 0, listed.stderr
        assert listed.stdout.splitlines() == sorted(cut)
        assert "2 uncertain" in listed.stderr and "--resend-uncertain" in listed.stderr

        again = run(["send", ISSUE, "--backend", "smtp", "--yes", "--resend-uncertain"], cwd=root, env=SECRET)
        assert again.returncode == 0, again.stdout + again.stderr
        assert run(["status", ISSUE, "--uncertain"], cwd=root).stdout == ""


def test_status_uncertain_before_any_send(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", subscribers=3)
    r = run(["status", ISSUE, "--uncertain"], cwd=root)
    assert r.returncode == 0 and r.stdout == "" and "nothing has been sent yet" in r.stderr


def test_status_uncertain_needs_one_issue(tmp_path: Path) -> None:
    """With no issue, a folder or two issues there is no one list of readers to print: a clear
    line and exit 1 rather than the overview on stdout, which a script would take for addresses."""
    root = make_project(tmp_path / "p", subscribers=3)
    for args in ([], ["issues"], [ISSUE, ISSUE]):
        r = run(["status", *args, "--uncertain"], cwd=root)
        assert r.returncode == 1, (args, r.stdout, r.stderr)
        assert r.stdout == "" and "Traceback" not in r.stderr
        assert "--uncertain lists the readers of one issue" in r.stderr, r.stderr
