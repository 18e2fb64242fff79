"""`newsletter report [ISSUE] [--json]`: real state from a real send, real bounces, a real PNG."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from PIL import Image

from newsletter.store import open_store
from tests.bouncekit import EXPECTED, ISSUE, SECRET, corpus, maildir, sent_project
from tests.conftest import run
from tests.sendkit import SLUG


def test_report_of_an_issue_counts_flags_and_json(tmp_path: Path) -> None:
    root = sent_project(tmp_path / "p")
    maildir(root / "Maildir", {n: corpus(n) for n in EXPECTED})
    assert run(["bounces", "Maildir"], cwd=root, env=SECRET).returncode == 0
    with open_store(root / ".newsletter" / "state.db") as store:
        store.suppress("quiet@example.org", "complained", source="test")
        store.suppress("forwarded@example.org", "unsubscribed", source="test")

    r = run(["report", ISSUE, "--json"], cwd=root)
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert {k: data[k] for k in ("issue", "sent", "failed", "uncertain", "hard_bounces", "soft_bounces",
                                 "complaints", "unsubscribes")} == {
        "issue": SLUG, "sent": 9, "failed": 0, "uncertain": 0, "hard_bounces": 5, "soft_bounces": 2,
        "complaints": 1, "unsubscribes": 1}
    assert round(data["rates"]["complaint_rate"], 4) == round(1 / 9, 4)
    assert data["over_threshold"] == ["complaint_rate", "bounce_rate"]

    table = run(["report", ISSUE], cwd=root)
    assert table.returncode == 0, table.stderr
    assert "bounced 7 (hard 5, soft 2) · bounce rate 77.78%" in table.stdout
    assert "! complaint rate 11.11% is above 0.30%: Gmail's limit for bulk senders is 0.3%" in table.stdout


def test_report_over_time_draws_a_chart_and_only_it_imports_matplotlib(tmp_path: Path) -> None:
    root = sent_project(tmp_path / "p")
    later = root / "issues" / "2011-12-05-test.yaml"
    later.write_text((root / ISSUE).read_text().replace("2011-11-28", "2011-12-05"))
    (root / "subscribers.csv").write_text("email,name,language,city\nada@example.org,,en,\nnew@example.org,,en,\n")
    assert run(["send", str(later.relative_to(root)), "--yes"], cwd=root, env=SECRET).returncode == 0
    maildir(root / "Maildir", {"postfix.eml": corpus("postfix.eml")})
    assert run(["bounces", "Maildir"], cwd=root, env=SECRET).returncode == 0

    r = run(["report"], cwd=root)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["issue", "sent", "bounced", "bounce%", "complaints", "unsubscribed"]
    assert lines[1].split()[:4] == [SLUG, "9", "1", "11.11%"] and lines[1].endswith(" !")
    assert lines[2].split()[:3] == ["2011-12-05-test", "2", "0"]
    png = root / "build" / "report" / "issues.png"
    assert lines[-1] == f"chart: {png}"
    with Image.open(png) as im:
        assert im.format == "PNG" and im.width >= 600 and len(im.convert("RGB").getcolors(maxcolors=1 << 20) or []) > 10

    for args in (["report", ISSUE, "--json"], ["status", ISSUE], ["bounces", "Maildir"]):
        p = subprocess.run([sys.executable, "-X", "importtime", "-m", "newsletter", *args], cwd=root,
                           capture_output=True, text=True, env={**SECRET, "PATH": "/usr/bin:/bin"})
        assert p.returncode == 0, p.stderr[-2000:]
        assert "matplotlib" not in p.stderr, f"{args[0]} imported matplotlib"


def test_report_without_state_is_one_line(tmp_path: Path) -> None:
    from tests.sendkit import make_project

    root = make_project(tmp_path / "p")
    r = run(["report"], cwd=root)
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "nothing has been sent" in r.stderr
