"""Hostile content, one test per case: each is escaped, rejected with a clear error, or bounded.

Markdown bodies with <script>, javascript: links, onerror= attributes and <style>; CR/LF
and non-ASCII in subjects, names and addresses (header injection); ../ in template
names, issue slugs and output paths; a 50 MB issue file; a CSV with a 10 MB cell.
Builds go through the real default theme (`newsletter build` as a process); sends go to
a real aiosmtpd server, and what it received is parsed back with the stdlib.
"""

from __future__ import annotations

import csv
import email
import email.header
import email.policy
import re
import shutil
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import run
from tests.sendkit import SLUG, make_project
from tests.smtp_server import SMTPServer
from tests.tomledit import edit_toml
from tests.torture.figures import count
from tests.torture.hostile import BASE_ISSUE, assert_safe_html

pytestmark = pytest.mark.torture

SECRET = {"NEWSLETTER_SECRET": "torture-hostile-signing-key-0123456789"}
CASES = "hostile cases"


def _issue(project: Path, name: str, **changes: object) -> str:
    doc = yaml.safe_load(yaml.safe_dump(BASE_ISSUE))
    for dotted, value in changes.items():
        target = doc
        keys = dotted.split("__")
        for k in keys[:-1]:
            target = target[int(k)] if k.isdigit() else target[k]
        last = keys[-1]
        if last.isdigit():
            target[int(last)] = value
        else:
            target[last] = value
    (project / "issues" / f"{name}.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return f"issues/{name}.yaml"


def _build_ok(project: Path, issue: str) -> tuple[str, str, str]:
    r = run(["build", issue], cwd=project)
    assert r.returncode == 0, r.stderr
    out = project / "build" / Path(issue).stem
    html, web, text = ((out / n).read_text(encoding="utf-8") for n in ("email.html", "web.html", "email.txt"))
    assert_safe_html(html)
    assert_safe_html(web, "web.html")
    return html, web, text


def _build_refused(project: Path, issue: str, *expected: str) -> str:
    r = run(["build", issue], cwd=project)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr, r.stderr
    for piece in expected:
        assert piece in r.stderr, (piece, r.stderr)
    assert not (project / "build" / Path(issue).stem).exists(), "a refused issue left output behind"
    return r.stderr


def _body(html: str) -> str:
    return html.split("<body", 1)[1]


# --- Markdown bodies --------------------------------------------------------------------

def test_script_in_markdown_is_shown_as_text(project: Path) -> None:
    issue = _issue(project, "script", blocks__0__body="Hi <script>alert('x')</script> <SCRIPT SRC=//e.example/x.js>"
                                                      "</SCRIPT>", blocks__5__body="<script>document.cookie</script>")
    html, web, text = _build_ok(project, issue)
    for page in (html, web):
        assert "&lt;script&gt;alert" in page and "<script" not in page.lower()
    assert "<script>alert('x')</script>" in text  # the text part shows it literally: it is not HTML
    count(CASES, "<script> in Markdown: escaped")


def test_javascript_links_in_markdown_are_not_links(project: Path) -> None:
    body = ("[a](javascript:alert(1)) [b](JaVaScRiPt:alert(2)) [c](&#106;avascript:alert(3)) "
            "[d](vbscript:x) [e](data:text/html;base64,PHNjcmlwdD4=) <javascript:alert(4)> ![f](javascript:alert(5))")
    issue = _issue(project, "jslinks", blocks__5__body=body)
    html, web, _ = _build_ok(project, issue)  # assert_safe_html: no href/src with a script scheme
    assert "javascript:alert(1)" in html  # visible as text, not dropped silently
    count(CASES, "javascript:/vbscript:/data: links in Markdown: not links")


def test_javascript_url_in_a_link_field_is_refused(project: Path) -> None:
    issue = _issue(project, "jsfield", blocks__0__link={"url": "javascript:alert(1)"},
                   blocks__6__items=[{"label": "Go", "url": "data:text/html,x"}])
    _build_refused(project, issue, "blocks[0].link.url", "scheme 'javascript' not allowed",
                   "blocks[6].items[0].url", "scheme 'data' not allowed")
    count(CASES, "javascript:/data: in URL fields: refused")


def test_onerror_attributes_stay_text(project: Path) -> None:
    issue = _issue(project, "onerror", blocks__0__body="<img src=x onerror=alert(1)> <a href=# onclick=x()>y</a>",
                   blocks__0__image={"src": "https://example.org/a.jpg?\"onerror=\"alert(2)", "alt": "\" onerror=\"x"},
                   blocks__0__title="' onmouseover='alert(3)")
    html, web, _ = _build_ok(project, issue)  # no on* attribute survives parsing
    assert "onerror=alert(1)" in html.replace("&gt;", ">").replace("&lt;", "<")  # shown, as text
    count(CASES, "onerror=/onclick= in Markdown and attributes: escaped")


def test_style_in_markdown_is_escaped(project: Path) -> None:
    issue = _issue(project, "style", blocks__5__body="<style>body{display:none}</style> <div style=\"x\">")
    html, web, _ = _build_ok(project, issue)  # no <style> inside <body>
    assert "display:none}</style>" not in _body(html) and "&lt;style&gt;" in _body(html)
    count(CASES, "<style> in Markdown: escaped")


# --- subjects, names, addresses: header injection -----------------------------------------

def test_crlf_in_subject_is_refused(project: Path) -> None:
    for i, subject in enumerate(["Hello\r\nBcc: victim@example.org", "Hello\nX-Injected: yes", "Hello\rThere"]):
        issue = _issue(project, f"crlf{i}", subject=subject)
        _build_refused(project, issue, f"issues/crlf{i}.yaml", "subject: must be a single line")
    count(CASES, "CR/LF in subject: refused", 3)


def test_control_characters_in_text_fields_are_refused(project: Path) -> None:
    """A NUL in a title used to reach MRML and fail as "MJML error: unable to parse": now named."""
    issue = _issue(project, "nul", subject="Hello\x00", blocks__0__title="T\x00itle", blocks__5__body="b\x1bc")
    _build_refused(project, issue, "subject: contains a control character (U+0000)",
                   "blocks[0].title: contains a control character (U+0000)",
                   "blocks[5].body: contains a control character (U+001B)")
    count(CASES, "NUL/ESC in subject, title, body: refused by name", 3)


def test_crlf_in_config_sender_is_refused(project: Path) -> None:
    edit_toml(project / "newsletter.toml", {"sender.name": "FIDH\r\nBcc: victim@example.org"})
    issue = _issue(project, "ok")
    r = run(["build", issue], cwd=project)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "sender.name: must be a single line" in r.stderr, r.stderr
    count(CASES, "CR/LF in sender name (config): refused")


HOSTILE_NAMES = [
    "Eve\r\nBcc: victim@example.org",
    "Eve\nX-Injected: yes",
    "Eve\rSubject: forged",
    "Eve\u2028Bcc: victim@example.org",
    "Eve\x85X-Injected: next-line",
    "Eve\x00\x0b\x0cnul",
    "=?utf-8?q?=0D=0ABcc:_victim@example.org?=",
    "Ève “Ünïcødé” 😀 Łódź",
    '"Quoted, Name" <fake@evil.example>',
]


def _write_csv(path: Path, rows: list[tuple[str, str, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["email", "name", "language", "city"])
        for e, n, city in rows:
            w.writerow([e, n, "en", city])


def _received(server: SMTPServer) -> list[email.message.EmailMessage]:
    return [d.message() for d in server.deliveries]


def test_crlf_and_unicode_in_names_cannot_forge_headers(tmp_path: Path) -> None:
    with SMTPServer(pipelining=True) as server:
        root = make_project(tmp_path / "p", smtp_port=server.port)
        rows = [(f"reader{i}@example.org", name, name) for i, name in enumerate(HOSTILE_NAMES)]
        _write_csv(root / "subscribers.csv", rows)
        r = run(["send", f"issues/{SLUG}.yaml", "--backend", "smtp", "--yes"], cwd=root, env=SECRET)
        assert r.returncode == 0, r.stderr
        assert sorted(d.rcpt for d in server.deliveries) == sorted(e for e, _, _ in rows)  # no extra recipient
        for msg, d in zip(_received(server), server.deliveries, strict=True):
            names = {k.lower() for k in msg.keys()}
            assert not names & {"bcc", "cc", "x-injected"}, (d.rcpt, names)
            assert len(msg.get_all("Subject")) == 1 and len(msg.get_all("To")) == 1
            for header in ("Subject", "To"):
                value = str(msg[header])
                assert not re.search(r"[\r\n\x00\x0b\x0c\x85\u2028]", value), (header, value)
            assert msg["To"].addresses[0].addr_spec == d.rcpt  # the name never changes where it goes
            # the raw header block is 7-bit: non-ASCII travels as RFC 2047 encoded words
            head = d.data.split(b"\r\n\r\n", 1)[0]
            assert all(b < 128 for b in head), head[:300]
        unicode_msg = next(m for m, d in zip(_received(server), server.deliveries, strict=True)
                           if d.rcpt == "reader7@example.org")
        assert "Ève “Ünïcødé” 😀 Łódź" in str(unicode_msg["Subject"])  # sendkit's subject carries {{ name }}
        assert unicode_msg["To"].addresses[0].display_name == "Ève “Ünïcødé” 😀 Łódź"
    count(CASES, "CR/LF, NUL, U+2028, NEL, encoded words in names: no header forged", len(HOSTILE_NAMES))


def test_crlf_in_addresses_is_rejected_with_its_line(tmp_path: Path) -> None:
    with SMTPServer(pipelining=True) as server:
        root = make_project(tmp_path / "p", smtp_port=server.port)
        bad = ["victim@example.org\r\nRCPT TO:<other@example.org>", "a@example.org>\r\nDATA",
               "b@example.org\nBcc: c@example.org", "d@exa\x00mple.org", "<e@example.org>",
               "f@example.org, g@example.org"]
        rows = [("good@example.org", "Good", "x")] + [(b, "Bad", "x") for b in bad]
        _write_csv(root / "subscribers.csv", rows)
        r = run(["send", f"issues/{SLUG}.yaml", "--dry-run"], cwd=root, env=SECRET)
        assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
        assert "invalid" in r.stdout.lower()
        r = run(["send", f"issues/{SLUG}.yaml", "--backend", "smtp", "--yes"], cwd=root, env=SECRET)
        assert "Traceback" not in r.stderr, r.stderr
        assert [d.rcpt for d in server.deliveries] == ["good@example.org"]
        assert {d.rcpt for d in server.deliveries}.isdisjoint({"other@example.org", "c@example.org"})
    count(CASES, "CR/LF, NUL, brackets, lists in addresses: rejected", len(bad))


def test_non_ascii_addresses(tmp_path: Path) -> None:
    with SMTPServer(pipelining=True) as server:
        root = make_project(tmp_path / "p", smtp_port=server.port)
        rows = [("user@exämple.org", "IDN domain", "x"), ("josé@example.org", "UTF-8 local part", "x"),
                ("ok@example.org", "ASCII", "x")]
        _write_csv(root / "subscribers.csv", rows)
        r = run(["send", f"issues/{SLUG}.yaml", "--backend", "smtp", "--yes"], cwd=root, env=SECRET)
        assert "Traceback" not in r.stderr, r.stderr
        got = sorted(d.rcpt for d in server.deliveries)
        assert got == ["ok@example.org", "user@xn--exmple-cua.org"], got  # IDN as punycode; SMTPUTF8 refused
        r = run(["send", f"issues/{SLUG}.yaml", "--dry-run"], cwd=root, env=SECRET)
        assert "josé@example.org" in r.stdout + r.stderr  # reported, with its line
    count(CASES, "non-ASCII addresses: IDN punycoded, UTF-8 local part refused", 2)


# --- ../ in template names, issue slugs, output paths ----------------------------------

def test_dotdot_in_template_include_is_refused(project: Path) -> None:
    (project / "templates").mkdir(exist_ok=True)
    theme = Path(__file__).resolve().parents[2] / "templates"
    shutil.copy(theme / "email.mjml.j2", project / "templates" / "email.mjml.j2")
    page = project / "templates" / "email.mjml.j2"
    page.write_text(page.read_text().replace("<mj-body", '{% include "../../../../../../etc/passwd" %}<mj-body', 1))
    issue = _issue(project, "tpl")
    r = run(["build", issue], cwd=project)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert "etc/passwd" in r.stderr and "root:" not in r.stderr + r.stdout
    assert not (project / "build" / "tpl").exists()
    count(CASES, "../ in a template include: refused")


def test_dotdot_as_block_type_is_refused(project: Path) -> None:
    issue = _issue(project, "blocktype", blocks__5__type="../../../etc/passwd")
    _build_refused(project, issue, "blocks[5].type", "unknown block type")
    count(CASES, "../ as a block type (template name): refused")


def test_dotdot_in_issue_paths_stays_inside_build(project: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "evil.yaml").write_text(yaml.safe_dump(BASE_ISSUE, allow_unicode=True))
    r = run(["build", str(Path("..") / ".." / outside.relative_to(tmp_path.parent) / "evil.yaml")], cwd=project)
    assert r.returncode == 0, r.stderr
    assert (project / "build" / "evil" / "email.html").is_file()  # built inside build/, by file name
    for name in ("..yaml", "...yaml", ".hidden.yaml"):
        (project / "issues" / name).write_text(yaml.safe_dump(BASE_ISSUE))
        r = run(["build", f"issues/{name}"], cwd=project)
        assert r.returncode == 1 and "Traceback" not in r.stderr, (name, r.stderr)
        assert "cannot be an issue id" in r.stderr, r.stderr
    assert sorted(p.name for p in (project / "build").iterdir()) == ["evil"]
    count(CASES, "../ and dot-names as issue slugs: kept inside build/ or refused", 4)


def test_dotdot_in_addresses_stays_inside_outbox(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p")
    rows = [("a/../../b@example.org", "x", "x"), ("c/d@example.org", "x", "x"), (".e@example.org", "x", "x"),
            ("f..g@example.org", "x", "x"), ("%2e%2e%2fh@example.org", "x", "x"), ("ok@example.org", "x", "x"),
            ('"../../quoted"@example.org', "x", "x")]
    _write_csv(root / "subscribers.csv", rows)
    r = run(["send", f"issues/{SLUG}.yaml", "--dry-run"], cwd=root)  # sample .eml files, named by address
    samples = [p for p in (root / "build").rglob("*.eml")]
    assert samples and all(p.parent.name == "samples" for p in samples), (samples, r.stdout, r.stderr)
    r = run(["send", f"issues/{SLUG}.yaml", "--backend", "outbox", "--yes"], cwd=root)
    assert "Traceback" not in r.stderr, r.stderr
    box = root / "outbox" / SLUG
    files = [p for p in (root / "outbox").rglob("*") if p.is_file()]
    assert files and all(p.parent == box for p in files), ([str(p) for p in files], r.stdout, r.stderr)
    assert not list(tmp_path.glob("*.eml")) and not list(root.glob("*.eml"))
    count(CASES, "../ and / in addresses: outbox and sample files stay in their folder", len(rows))


# --- size bombs --------------------------------------------------------------------------

def test_50mb_issue_file_is_refused_quickly(project: Path) -> None:
    path = project / "issues" / "huge.yaml"
    with path.open("w") as f:
        f.write("subject: huge\ndate: 2011-11-28\nblocks:\n  - type: section\n    body: |\n")
        line = "      " + "x" * 1000 + "\n"
        for _ in range(52 * 1024):
            f.write(line)
    assert path.stat().st_size > 50 * 1024 * 1024
    started = time.monotonic()
    err = _build_refused(project, "issues/huge.yaml", "issues/huge.yaml", "limit")
    assert time.monotonic() - started < 30, "refusing a huge file must not parse it first"
    assert err.count("\n") == 1, err
    count(CASES, "50 MB issue file: refused (size limit)")


def test_csv_with_a_10mb_cell_is_bounded(tmp_path: Path) -> None:
    with SMTPServer(pipelining=True) as server:
        root = make_project(tmp_path / "p", smtp_port=server.port)
        with (root / "subscribers.csv").open("w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["email", "name", "language", "city"])
            w.writerow(["first@example.org", "First", "en", "Minsk"])
            w.writerow(["huge@example.org", "Huge", "en", "y" * (10 * 1024 * 1024)])
            w.writerow(["quoted@example.org", "Q" * (10 * 1024 * 1024), "en", "Minsk"])
            w.writerow(["last@example.org", "Last", "en", "Minsk"])
        started = time.monotonic()
        r = run(["send", f"issues/{SLUG}.yaml", "--dry-run"], cwd=root, env=SECRET)
        assert "Traceback" not in r.stderr, r.stderr[-2000:]
        assert r.returncode in (0, 1)
        assert len(r.stdout) + len(r.stderr) < 100_000, "the 10 MB cell was echoed back"
        r = run(["send", f"issues/{SLUG}.yaml", "--backend", "smtp", "--yes"], cwd=root, env=SECRET)
        assert "Traceback" not in r.stderr, r.stderr[-2000:]
        got = sorted(d.rcpt for d in server.deliveries)
        assert {"first@example.org", "last@example.org"} <= set(got), got  # the rest of the list goes out
        assert all(len(d.data) < 1024 * 1024 for d in server.deliveries), "a 10 MB merge field went into a message"
        assert time.monotonic() - started < 60
    count(CASES, "CSV with a 10 MB cell: row refused, rest sent", 2)
