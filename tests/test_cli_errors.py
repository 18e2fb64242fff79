"""One place (newsletter/cli.py) turns library errors into lines on stderr and an exit status,
for every command alike; `check` reports the problems of an issue that does not build there too."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from newsletter.errors import CheckFailed, MissingSecret, NewsletterError
from tests.conftest import NEWSLETTER, run

BROKEN = """subject: Broken
date: 2011-11-28
blocks:
  - type: section
    heading: No body
"""


def test_check_reports_an_issue_that_does_not_build_on_stderr(project: Path) -> None:
    (project / "issues" / "broken.yaml").write_text(BROKEN)
    r = run(["check", "issues/broken.yaml"], cwd=project)
    assert r.returncode == 1
    assert r.stdout == ""  # stdout holds findings only
    assert r.stderr.splitlines() == ["issues/broken.yaml:4: blocks[0].body: missing (required)", "1 error, 0 warnings"]
    assert "Traceback" not in r.stderr


def test_missing_secret_is_a_library_error_shown_in_one_line(project: Path) -> None:
    """MissingSecret goes through the same handler as every NewsletterError (it was a bare
    Exception, which a command that forgot to catch it showed as a traceback)."""
    assert issubclass(MissingSecret, NewsletterError) and issubclass(CheckFailed, NewsletterError)
    env = {k: v for k, v in os.environ.items() if k != "NEWSLETTER_SECRET"}
    r = subprocess.run([*NEWSLETTER, "serve", "--port", "1"], cwd=project, env=env, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 1
    assert len(r.stderr.splitlines()) == 1 and "NEWSLETTER_SECRET is not set" in r.stderr
    assert "Traceback" not in r.stderr


def test_ctrl_c_stops_a_command_with_status_130_and_one_line(project: Path) -> None:
    # SIGINT as a terminal's Ctrl-C delivers it, whatever the test runner inherited (a shell starts
    # background jobs with SIGINT ignored, and Python then never raises KeyboardInterrupt)
    proc = subprocess.Popen([*NEWSLETTER, "preview", "issues/2011-11-28-free-ales-bialiatski.yaml", "--port", "0"],
                            cwd=project, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # printed once the server listens
        assert line.startswith("preview  http://127.0.0.1:"), line
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130
    assert err.strip().splitlines()[-1] == "interrupted"
    assert "Traceback" not in err and "Aborted!" not in err


def test_no_command_module_exits_by_itself() -> None:
    """Commands raise; only newsletter/cli.py chooses exit statuses (send.py's "not every reader
    was handed off" is the one exception, owned by the send loop's report)."""
    commands = Path(__file__).resolve().parents[1] / "newsletter" / "commands"
    offenders = [p.name for p in sorted(commands.glob("*.py"))
                 if p.name != "send.py" and ("sys.exit(" in p.read_text() or "SystemExit" in p.read_text())]
    assert offenders == []
