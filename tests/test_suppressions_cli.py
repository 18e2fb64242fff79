"""`newsletter unsubscribe / resubscribe / suppressions list|export|import`, run as real processes."""

from __future__ import annotations

import csv
import sqlite3
from pathlib import Path

from tests.conftest import run

STATE = ".newsletter/state.db"


def rows(project: Path, sql: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(project / STATE)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def test_unsubscribe_resubscribe_are_explicit_and_logged(project: Path) -> None:
    r = run(["unsubscribe", "Someone@Example.org", "other@example.org", "--reason", "asked by phone"], project)
    assert r.returncode == 0, r.stderr
    assert "2 suppressed" in r.stdout
    assert rows(project, "SELECT email, reason, source, detail FROM suppressions ORDER BY email") == [
        ("other@example.org", "manual", "cli", "asked by phone"),
        ("someone@example.org", "manual", "cli", "asked by phone")]

    bad = run(["unsubscribe", "third@example.org", "not-an-address"], project)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert "not-an-address" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    assert rows(project, "SELECT count(*) FROM suppressions") == [(2,)]  # third@ not added either

    listed = run(["suppressions", "list"], project)
    assert listed.returncode == 0 and listed.stdout.count("\n") == 2 and "someone@example.org\tmanual" in listed.stdout

    refused = run(["resubscribe", "someone@example.org"], project, input="")  # not a terminal, no --yes
    assert refused.returncode == 1 and "--yes" in refused.stderr and "asked by phone" in refused.stderr
    assert rows(project, "SELECT count(*) FROM suppressions") == [(2,)]

    ok = run(["resubscribe", "SOMEONE@example.org", "--yes", "--reason", "called back"], project)
    assert ok.returncode == 0, ok.stderr
    assert rows(project, "SELECT email FROM suppressions") == [("other@example.org",)]
    assert rows(project, "SELECT action, email, detail FROM actions WHERE action = 'resubscribe'") == [
        ("resubscribe", "someone@example.org", "via cli: called back")]


def test_export_then_import_round_trips(project: Path, tmp_path: Path) -> None:
    assert run(["unsubscribe", "a@example.org", "b@example.org", "--reason", "by letter"], project).returncode == 0
    out = tmp_path / "out.csv"
    r = run(["suppressions", "export", str(out)], project)
    assert r.returncode == 0, r.stderr
    exported = list(csv.DictReader(out.open(encoding="utf-8")))
    assert [(x["email"], x["reason"], x["detail"]) for x in exported] == [
        ("a@example.org", "manual", "by letter"), ("b@example.org", "manual", "by letter")]

    (project / STATE).unlink()
    for extra in ("-wal", "-shm"):
        (project / (STATE + extra)).unlink(missing_ok=True)
    r = run(["suppressions", "import", str(out)], project)
    assert r.returncode == 0, r.stderr
    assert "2 suppressed" in r.stdout
    assert rows(project, "SELECT email, reason, source, detail FROM suppressions ORDER BY email") == [
        ("a@example.org", "manual", "import", "by letter"), ("b@example.org", "manual", "import", "by letter")]


def test_import_with_bad_rows_names_them_and_imports_nothing(project: Path) -> None:
    bad = project / "in.csv"
    bad.write_text("email,reason\nok@example.org,bounced\nnot-an-email,\n,unsubscribed\n"
                   "fine@example.org,bouncy\n", encoding="utf-8")
    assert run(["unsubscribe", "seed@example.org"], project).returncode == 0
    r = run(["suppressions", "import", "in.csv"], project)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert lines[0].startswith("in.csv:3: email: not a valid address")
    assert lines[1].startswith("in.csv:4: email:")
    assert lines[2].startswith("in.csv:5: reason: 'bouncy'")
    assert len(lines) == 3
    assert rows(project, "SELECT email FROM suppressions") == [("seed@example.org",)]  # ok@ was not imported
    nohead = project / "nohead.csv"
    nohead.write_text("ok@example.org\n")
    r = run(["suppressions", "import", "nohead.csv"], project)
    assert r.returncode == 1 and "nohead.csv:1: no 'email' column" in r.stderr


def test_import_an_esp_export_with_a_forced_reason(project: Path) -> None:
    # a SendGrid-style bounce export: BOM, ';' separators, free-text reasons, a duplicate
    (project / "bounces.csv").write_text(
        "\ufeffStatus;Reason;Email;Created\n5.1.1;550 user unknown;Gone@Example.org;1700000000\n"
        "5.1.1;550 no mailbox;gone@example.org;1700000001\n5.0.0;552 over quota;full@example.org;1700000002\n",
        encoding="utf-8")
    assert run(["suppressions", "import", "bounces.csv"], project).returncode == 1  # free text is not a reason
    dry = run(["suppressions", "import", "bounces.csv", "--reason", "bounced", "--dry-run"], project)
    assert dry.returncode == 0 and "2 addresses to import" in dry.stdout and not (project / STATE).exists()
    r = run(["suppressions", "import", "bounces.csv", "--reason", "bounced"], project)
    assert r.returncode == 0, r.stderr
    assert "2 suppressed" in r.stdout and "1 duplicate" in r.stdout
    assert rows(project, "SELECT email, reason, detail FROM suppressions ORDER BY email") == [
        ("full@example.org", "bounced", "552 over quota"), ("gone@example.org", "bounced", "550 user unknown")]
    again = run(["suppressions", "import", "bounces.csv", "--reason", "bounced"], project)
    assert "0 suppressed, 2 already suppressed" in again.stdout


def test_import_names_malformed_and_undecodable_lines(project: Path) -> None:
    """A cell over the csv module's field limit breaks one row (reported on its own line, the rest
    still checked); bytes that are not UTF-8 stop the import naming their line. Nothing is
    imported either way."""
    (project / "big.csv").write_bytes(b'email,reason\n"multi\nline@example.org",bounced\nok@example.org,bounced,"'
                                      + b"x" * 200_000 + b'"\nbad,\n')
    r = run(["suppressions", "import", "big.csv"], project)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert lines[0].startswith("big.csv:2: email: not a valid address"), lines  # the quoted row starts on line 2
    assert lines[1].startswith("big.csv:4: malformed CSV row: field larger than field limit"), lines
    assert lines[2].startswith("big.csv:5: email:"), lines
    assert len(lines) == 3, lines
    (project / "latin1.csv").write_bytes("email\nok@example.org\nren\xe9@example.org\n".encode("latin-1"))
    r = run(["suppressions", "import", "latin1.csv"], project)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "latin1.csv:3: not UTF-8 text" in r.stderr, r.stderr
    assert not (project / ".newsletter" / "state.db").exists() or rows(project, "SELECT email FROM suppressions") == []
