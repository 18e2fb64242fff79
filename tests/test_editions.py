"""Editions: `issues/<id>.<lang>.yaml` beside `issues/<id>.yaml`. Built, checked, published and
sent together: each reader gets the edition in their language, once, whatever kills a send."""

from __future__ import annotations

import csv
import email
import email.policy
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, run
from tests.sendkit import ISSUE, SLUG, address, make_project
from tests.smtp_server import SMTPServer
from tests.tomledit import edit_toml

FIDH = "2011-11-28-free-ales-bialiatski"
FRENCH = REPO / "tests" / "fixtures" / "i18n" / f"{FIDH}.fr.yaml"
SECRET = {"NEWSLETTER_SECRET": "editions-test-secret-0123456789abcdef"}
EN_SUBJECT = "Let’s mobilise to free Ales Bialiatski!"
FR_SUBJECT = "Mobilisons-nous pour libérer Ales Bialiatski !"


@pytest.fixture
def fidh(project: Path) -> Path:
    """The example project with the French edition of the FIDH issue next to it."""
    shutil.copy(FRENCH, project / "issues")
    return project


def _ledger(root: Path, slug: str) -> list[tuple[str, str]]:
    conn = sqlite3.connect(root / ".newsletter" / "state.db")
    try:
        return list(conn.execute("SELECT email, status FROM ledger WHERE issue = ?", (slug,)))
    finally:
        conn.close()


def test_build_writes_every_edition_with_hreflang(fidh: Path) -> None:
    r = run(["build", "issues/"], cwd=fidh)
    assert r.returncode == 0, r.stderr
    assert f"edition    fr: build/{FIDH}/fr/  {FR_SUBJECT}" in r.stdout
    out = fidh / "build" / FIDH
    fr_html = (out / "fr" / "email.html").read_text()
    assert '<html lang="fr" dir="ltr"' in fr_html and "Lire la suite" not in fr_html  # the edition's own label
    assert "Suivez-nous" not in fr_html and "Suivez nos actions" in fr_html
    # "view in browser" goes to the reader's edition
    assert f'href="https://news.example.org/issues/{FIDH}/fr/"' in fr_html
    meta = json.loads((out / "meta.json").read_text())
    assert meta["editions"]["fr"]["subject"] == FR_SUBJECT
    assert meta["editions"]["fr"]["web_url"] == f"https://news.example.org/issues/{FIDH}/fr/"
    for web in (out / "web.html", out / "fr" / "web.html"):
        text = web.read_text()
        assert f'<link rel="alternate" hreflang="en" href="https://news.example.org/issues/{FIDH}/">' in text
        assert f'<link rel="alternate" hreflang="fr" href="https://news.example.org/issues/{FIDH}/fr/">' in text
        assert f'<link rel="alternate" hreflang="x-default" href="https://news.example.org/issues/{FIDH}/">' in text
    # and for people, a line of links at the top, each language named in itself, the current one not a link
    english, french = (out / "web.html").read_text(), (out / "fr" / "web.html").read_text()
    assert '<nav class="nl-languages" aria-label="Languages"' in english
    assert '<strong lang="en" aria-current="page">English</strong>' in english
    assert f'<a href="https://news.example.org/issues/{FIDH}/fr/" hreflang="fr" lang="fr"' in english
    assert ">Français</a>" in english
    assert '<nav class="nl-languages" aria-label="Langues"' in french
    assert '<strong lang="fr" aria-current="page">Français</strong>' in french
    assert f'<a href="https://news.example.org/issues/{FIDH}/" hreflang="en" lang="en"' in french
    assert "nl-languages" not in (out / "email.html").read_text()  # the email itself goes to one reader
    # the other example has no edition: no folder, no alternates
    other = fidh / "build" / "2013-12-10-solidarity-with-ales-bialiatski"
    assert not [p for p in other.iterdir() if p.is_dir()] and "hreflang" not in (other / "web.html").read_text()
    assert "nl-languages" not in (other / "web.html").read_text()


def test_a_folder_stands_for_each_issue_once_with_its_editions(fidh: Path) -> None:
    """`issues/` holding an issue and its edition is one issue (with the edition), not two."""
    build = run(["build", "issues/"], cwd=fidh)
    assert build.returncode == 0, build.stderr
    assert build.stdout.count(f"edition    fr: build/{FIDH}/fr/") == 1, build.stdout
    overview = run(["status"], cwd=fidh)
    assert overview.returncode == 0, overview.stderr
    assert overview.stdout.count(FIDH) == 1 and FR_SUBJECT not in overview.stdout, overview.stdout
    shutil.move(fidh / "issues" / "2013-12-10-solidarity-with-ales-bialiatski.yaml", fidh)
    dry = run(["send", "issues/", "--dry-run"], cwd=fidh)  # a send takes one issue: this folder holds one
    assert dry.returncode == 0, dry.stderr
    assert "(to send per edition: en 3, fr 1)" in dry.stdout, dry.stdout


def test_check_warns_when_an_edition_lacks_a_block(fidh: Path) -> None:
    edition = fidh / "issues" / f"{FIDH}.fr.yaml"
    text = edition.read_text()
    start, end = text.index("  - type: gallery"), text.index("  - type: quotes")
    edition.write_text(text[:start] + text[end:])
    r = run(["check", f"issues/{FIDH}.yaml"], cwd=fidh)
    line = next(n for n, t in enumerate(edition.read_text().splitlines(), 1) if t.startswith("blocks:"))
    assert (f"issues/{FIDH}.fr.yaml:{line}: warning: the fr edition has no counterpart of blocks[3] (gallery) "
            f"of {FIDH}.yaml [edition]") in r.stdout, r.stdout
    assert r.stdout.count("[example-domain]") == 1  # the config's findings once, not once per edition


def test_send_gives_each_reader_their_edition_once(fidh: Path) -> None:
    """The example list: Marie (fr) gets the French subject, everyone else the English one, each once."""
    with SMTPServer() as smtp:
        edit_toml(fidh / "newsletter.toml", {"smtp.host": "127.0.0.1", "smtp.port": smtp.port})
        dry = run(["send", f"issues/{FIDH}.yaml", "--dry-run"], cwd=fidh)
        assert dry.returncode == 0, dry.stderr
        assert "(to send per edition: en 3, fr 1)" in dry.stdout and f"  edition fr     {FR_SUBJECT}" in dry.stdout
        r = run(["send", f"issues/{FIDH}.yaml", "--backend", "smtp", "--yes"], cwd=fidh, env=SECRET)
        assert r.returncode == 0, r.stderr
        assert "handed off per edition: en 3, fr 1" in r.stdout
        subjects = {d.rcpt: d.message()["subject"] for d in smtp.deliveries}
        assert len(smtp.deliveries) == 4
        assert subjects == {"ada@example.org": EN_SUBJECT, "marie.curie@example.org": FR_SUBJECT,
                            "ales@example.org": EN_SUBJECT, "no-name@example.org": EN_SUBJECT}
        french = smtp.messages("marie.curie@example.org")[0]
        html = french.get_body(("html",)).get_content()  # type: ignore[union-attr]
        assert f"https://news.example.org/issues/{FIDH}/fr/" in html and "Consternation et indignation" in html
        # a rerun, given the edition's file this time, sends nobody anything
        again = run(["send", f"issues/{FIDH}.fr.yaml", "--backend", "smtp", "--yes"], cwd=fidh, env=SECRET)
        assert again.returncode == 0 and "nothing to send" in again.stdout, again.stdout + again.stderr
        assert len(smtp.deliveries) == 4
    assert sorted(_ledger(fidh, FIDH)) == sorted((e, "sent") for e in subjects)
    status = run(["status", f"issues/{FIDH}.yaml"], cwd=fidh)
    assert "  edition en     sent 3 · pending 0" in status.stdout and "  edition fr     sent 1 · pending 0" \
        in status.stdout, status.stdout


# --- kill -9 at random moments: nobody gets two editions ------------------------------------------

N = 600


def _kill_project(root: Path, port: int) -> dict[str, str]:
    """sendkit's project with N readers, every third French (fr or fr-CA), and a French edition."""
    make_project(root, smtp_port=port)
    languages = {}
    with (root / "subscribers.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["email", "name", "language", "city"])
        for i in range(N):
            lang = ("fr", "fr-CA", "en", "en", "de", "")[i % 6]
            w.writerow([address(i), f"Reader {i}", lang, "Minsk"])
            languages[address(i)] = "fr" if lang.startswith("fr") else "en"
    (root / "issues" / f"{SLUG}.fr.yaml").write_text(
        ISSUE.replace('subject: "Brèves de campagne: {{ name }}"', 'subject: "Édition française: {{ name }}"')
        .replace("date: 2011-11-28", "date: 2011-11-28\nlanguage: fr"))
    return languages


def _start(root: Path, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "newsletter", "send", f"issues/{SLUG}.yaml", "--backend", "smtp", "--yes", *extra],
        cwd=root, env={**os.environ, **SECRET}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.mark.slow
def test_sigkill_mid_send_never_gives_anyone_two_editions(tmp_path: Path) -> None:
    seed = int(os.environ.get("KILL_SEED", time.time_ns() % 1_000_000_007))
    rng = random.Random(seed)
    print(f"KILL_SEED={seed}")
    with SMTPServer(delay=0.002, pipelining=True) as server:
        root = tmp_path / "p"
        languages = _kill_project(root, server.port)
        kills_mid_send = 0
        for k in range(4):
            before = len(server.deliveries)
            if before >= N - 30:
                break
            target = before + (rng.randint(0, 20) if k == 0 else rng.randint(10, max(11, (N - before) // 2)))
            proc = _start(root)
            deadline = time.monotonic() + 60
            while len(server.deliveries) < target and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.001)
            time.sleep(rng.random() * 0.004)
            if proc.poll() is not None:
                _, err = proc.communicate()
                pytest.fail(f"send ended before the kill (rc {proc.returncode}): {err.decode()[-2000:]}")
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            proc.communicate()
            kills_mid_send += 0 < len(server.deliveries) < N
        assert kills_mid_send >= 2, "the kills should land while mail is flowing"
        final = _start(root, "--resend-uncertain")
        _, err = final.communicate(timeout=120)
        assert final.returncode == 0, err.decode()[-2000:]

        counts = server.counts()
        editions: dict[str, set[str]] = {}
        for d in server.deliveries:
            subject = str(d.message()["subject"])
            editions.setdefault(d.rcpt, set()).add("fr" if subject.startswith("Édition française") else "en")
        uncertain_twice = [e for e, n in counts.items() if n > 1]
        # a reader whose hand-off a kill cut (uncertain, then resent by --resend-uncertain) may hold
        # two copies; at most one per kill and connection, and never of two different editions
        assert len(uncertain_twice) <= 4, uncertain_twice
        assert all(counts[address(i)] >= 1 for i in range(N)), "skipped"
        assert {e: ed for e, ed in editions.items() if len(ed) != 1} == {}, "two editions to one reader"
        assert all(editions[e] == {languages[e]} for e in languages), "a reader got the wrong edition"
    rows = _ledger(root, SLUG)
    assert len(rows) == N and {s for _, s in rows} == {"sent"}  # one row per reader per issue


def test_sendgrid_gets_one_request_per_edition_per_batch(tmp_path: Path) -> None:
    """Through the schema-checking SendGrid stand-in: a batch of mixed readers becomes a request per
    edition, each valid, each reader accepted once; the rerun sends nothing."""
    from tests.sendgrid_server import SendGridServer

    key = "SG.editions-key.abcdef"
    with SendGridServer(api_key=key) as server:
        root = tmp_path / "p"
        make_project(root)
        with (root / "subscribers.csv").open("w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["email", "name", "language", "city"])
            for i in range(30):
                w.writerow([address(i), f"Reader {i}", "fr" if i % 3 == 0 else "en", "Minsk"])
        (root / "issues" / f"{SLUG}.fr.yaml").write_text(ISSUE.replace("date: 2011-11-28", "date: 2011-11-28\n"
                                                                       "language: fr"))
        edit_toml(root / "newsletter.toml", {"sendgrid.host": server.url})
        env = {"SENDGRID_API_KEY": key, **SECRET}
        r = run(["send", f"issues/{SLUG}.yaml", "--backend", "sendgrid", "--yes"], cwd=root, env=env)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "handed off per edition: en 20, fr 10" in r.stdout
        assert sorted(q.personalizations for q in server.requests) == [10, 20]
        assert all(q.status == 202 for q in server.requests)  # each passed the published schema
        assert server.count_by_email() == {address(i): 1 for i in range(30)}
        again = run(["send", f"issues/{SLUG}.yaml", "--backend", "sendgrid", "--yes"], cwd=root, env=env)
        assert "nothing to send" in again.stdout and len(server.requests) == 2


def test_archive_lists_editions_in_their_language(fidh: Path) -> None:
    import xml.etree.ElementTree as ET

    edit_toml(fidh / "newsletter.toml", {"default_language": "fr"})
    r = run(["archive"], cwd=fidh)
    assert r.returncode == 0, r.stderr
    site = fidh / "build" / "archive" / "campaigns"  # FIDH's list's site (the digest has its own)
    index = (site / "index.html").read_text()
    assert '<html lang="fr" dir="ltr">' in index and "1 numéro" in index and "Flux Atom" in index
    assert (f'<a href="issues/{FIDH}/fr/index.html" hreflang="fr" lang="fr">Français: '
            f'<span dir="auto">{FR_SUBJECT}</span></a>') in index
    page = (site / "issues" / FIDH / "fr" / "index.html").read_text()
    assert '<a href="../../../index.html">&larr; Tous les numéros</a>' in page and FR_SUBJECT in page
    english = (site / "issues" / FIDH / "index.html").read_text()
    assert '<a href="../../index.html">&larr; All issues</a>' in english
    entries = ET.parse(site / "feed.xml").getroot().findall("{http://www.w3.org/2005/Atom}entry")
    langs = {e.find("{http://www.w3.org/2005/Atom}id").text: e.get("{http://www.w3.org/XML/1998/namespace}lang")
             for e in entries}
    assert len(entries) == 2  # the issue and its edition: the digest's issue is in its own list's feed
    assert langs[f"https://news.example.org/issues/{FIDH}/fr/"] is None  # the feed's own language
    assert langs[f"https://news.example.org/issues/{FIDH}/"] == "en"


def test_an_edition_goes_to_its_issues_list_members_and_all(fidh: Path) -> None:
    """An edition inherits its issue's `list:` (naming another list is a FILE:LINE error); the
    per-edition plan and status count the list's confirmed store members like the send does."""
    edition = fidh / "issues" / f"{FIDH}.fr.yaml"
    good = edition.read_text()
    lines = good.splitlines()
    line = next(i for i, text in enumerate(lines, 1) if text.startswith("list:"))
    edition.write_text("\n".join(t if i != line else "list: digest" for i, t in enumerate(lines, 1)) + "\n")
    r = run(["build", f"issues/{FIDH}.yaml"], cwd=fidh)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.startswith(f"issues/{FIDH}.fr.yaml:{line}: list: 'digest': an edition goes to its issue's list "
                               f"(issues/{FIDH}.yaml names 'campaigns')"), r.stderr
    assert not (fidh / "build").exists()
    edition.write_text("".join(t for t in good.splitlines(keepends=True) if not t.startswith("list:")))
    r = run(["build", f"issues/{FIDH}.yaml"], cwd=fidh)  # left out: the issue's list
    assert r.returncode == 0, r.stderr
    assert "Mobilisons-nous" in (fidh / "build" / FIDH / "fr" / "email.html").read_text()

    # confirmed members of campaigns: one new French reader, and Marie (fr) who is in the CSV as well;
    # a French reader of the digest only is not counted for this issue
    (fidh / "crm.csv").write_text("email,name,language\nnouvelle@example.org,Nouvelle,fr\n"
                                  "marie.curie@example.org,Marie Curie,fr\n")
    (fidh / "other.csv").write_text("email,name,language\nautre@example.org,Autre,fr\n")
    assert run(["subscribers", "import", "crm.csv", "--list", "campaigns"], cwd=fidh).returncode == 0
    assert run(["subscribers", "import", "other.csv", "--list", "digest"], cwd=fidh).returncode == 0
    dry = run(["send", f"issues/{FIDH}.yaml", "--dry-run"], cwd=fidh)
    assert dry.returncode == 0, dry.stderr
    assert "(to send per edition: en 3, fr 2)" in dry.stdout, dry.stdout
    status = run(["status", f"issues/{FIDH}.fr.yaml"], cwd=fidh)
    assert status.returncode == 0, status.stderr
    assert "pending 5" in status.stdout, status.stdout
    assert "edition en     sent 0 · pending 3 ·" in status.stdout, status.stdout
    assert "edition fr     sent 0 · pending 2 ·" in status.stdout, status.stdout


def test_a_test_message_of_an_edition(fidh: Path) -> None:
    """`send --to ADDR --language fr` shows the French edition (subject, lang); without it the
    issue itself; a language with no edition, or --language without --to, is one clear line."""
    issue = f"issues/{FIDH}.yaml"
    outbox = fidh / "outbox" / FIDH / "test"
    r = run(["send", issue, "--to", "editor@example.org", "--language", "fr-CA"], fidh)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "test message (the fr edition) sent to editor@example.org" in r.stdout
    (eml,) = outbox.glob("*.eml")
    msg = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
    assert msg["Subject"] == f"[TEST] {FR_SUBJECT}"
    assert '<html lang="fr"' in msg.get_body(("html",)).get_content()
    eml.unlink()
    r = run(["send", issue, "--to", "editor@example.org"], fidh)
    assert r.returncode == 0 and "(the en edition)" in r.stdout, r.stdout + r.stderr
    (eml,) = outbox.glob("*.eml")
    assert email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)["Subject"] == f"[TEST] {EN_SUBJECT}"
    eml.unlink()
    refused = ((["--to", "editor@example.org", "--language", "de"], f"{FIDH} has no edition in de (it has: en, fr)"),
               (["--language", "fr", "--dry-run"], "--language chooses the edition of a --to test"))
    for args, words in refused:
        r = run(["send", issue, *args], fidh)
        assert r.returncode == 1 and words in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)
    assert not list(outbox.glob("*.eml"))
