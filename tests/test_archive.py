"""`newsletter archive`: a static site of every issue, newest first, and an Atom feed.

These run on the example as a one-list project (`single_list`): its archive is build/archive/
itself, as before lists. Several lists' sites: tests/test_archive_lists.py."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import yaml

from newsletter.config import load_config
from tests.conftest import run, single_list

ATOM = "{http://www.w3.org/2005/Atom}"


class Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.hrefs += [v for k, v in attrs if k == "href" and v]


def links_of(path: Path) -> list[str]:
    p = Links()
    p.feed(path.read_text(encoding="utf-8"))
    return p.hrefs


def test_archive_of_the_example_issues(project: Path) -> None:
    # a third, older issue written out of order, so "newest first" is not the file order
    (project / "issues" / "2010-01-05-older.yaml").write_text(
        "subject: An older issue for {{ name }}\ndate: 2010-01-05\nblocks:\n  - type: section\n    body: Hello.\n"
        "list: campaigns\n")
    single_list(project)
    r = run(["archive"], cwd=project)
    assert r.returncode == 0, r.stderr
    site = project / "build" / "archive"
    issues = sorted((project / "issues").glob("*.yaml"))
    dates = {p.stem: str(yaml.safe_load(p.read_text())["date"]) for p in issues}
    newest_first = sorted(dates, key=lambda s: (dates[s], s), reverse=True)

    # the index links each issue's page, newest first, relatively, and every link resolves
    index_links = [h for h in links_of(site / "index.html") if h.startswith("issues/")]
    assert index_links == [f"issues/{slug}/index.html" for slug in newest_first]
    for href in index_links:
        page = site / href
        assert page.is_file()
        # the page is the web version: no per-recipient placeholders, the way back is relative
        text = page.read_text(encoding="utf-8")
        assert "{{" not in text and "unsubscribe_url" not in text
        assert (page.parent / "../../index.html").resolve() == (site / "index.html").resolve()
        assert "../../index.html" in links_of(page)
    # the page sits where the email's "view in browser" link points (config.web_url -> issues/<slug>/)
    config = load_config(project / "newsletter.toml")
    base = config.base_url + "/"
    for slug in newest_first:
        web_url = config.web_url(slug)
        assert web_url.startswith(base)
        assert (site / web_url[len(base):] / "index.html").is_file()

    # the feed is XML an XML parser accepts, with one entry per issue, newest first
    feed = ET.parse(site / "feed.xml").getroot()
    assert feed.tag == f"{ATOM}feed"
    entries = feed.findall(f"{ATOM}entry")
    assert [e.find(f"{ATOM}id").text for e in entries] == [f"{base}issues/{s}/" for s in newest_first]
    assert feed.find(f"{ATOM}updated").text == f"{dates[newest_first[0]]}T00:00:00Z"
    older = entries[-1]
    assert older.find(f"{ATOM}title").text == "An older issue for reader"  # merge fields take their fallback
    assert not list((project / "build").glob(".archive*"))  # no temporary folders left


def test_archive_writes_nothing_when_an_issue_is_broken(project: Path) -> None:
    (project / "issues" / "2014-01-01-broken.yaml").write_text("subject: Broken\ndate: not a date\nblocks: []\n")
    r = run(["archive"], cwd=project)
    assert r.returncode == 1
    assert r.stdout == ""
    lines = r.stderr.splitlines()
    assert lines and all(line.startswith("issues/2014-01-01-broken.yaml:") for line in lines), r.stderr
    assert "Traceback" not in r.stderr
    assert not (project / "build" / "archive").exists()


def test_issues_dated_in_the_future_wait_unless_include_future(project: Path) -> None:
    import datetime as dt

    later = dt.date.today() + dt.timedelta(days=30)
    slug = f"{later.isoformat()}-scheduled"
    (project / "issues" / f"{slug}.yaml").write_text(
        f"subject: Not yet\ndate: {later.isoformat()}\nlist: campaigns\nblocks:\n  - type: section\n    body: Soon.\n")
    single_list(project)
    r = run(["archive"], cwd=project)
    assert r.returncode == 0, r.stderr
    assert f"skipped  {later.isoformat()}  {slug}: dated in the future (--include-future to publish it)" in r.stdout
    site = project / "build" / "archive"
    assert not (site / "issues" / slug).exists()
    assert f"issues/{slug}/index.html" not in links_of(site / "index.html")
    assert slug not in (site / "feed.xml").read_text()
    r = run(["archive", "--include-future"], cwd=project)
    assert r.returncode == 0, r.stderr
    assert (site / "issues" / slug / "index.html").exists() and "skipped" not in r.stdout
    assert f"issues/{slug}/index.html" in links_of(site / "index.html")


def test_the_archive_writes_dates_as_the_email_does(project: Path) -> None:
    """One date style per language: the index's date of each issue is the email's own rendering
    of it (Babel's "d MMMM y"), in English and in French."""
    from babel.dates import format_date

    from newsletter.compose.build import build_issue

    (project / "issues" / "2026-12-07-en.yaml").write_text(
        "subject: English\ndate: 2026-12-07\nlanguage: en\nlist: campaigns\nblocks:\n  - type: headline\n    title: T\n"
        "    date: 2026-12-07\n    body: Hi.\n")
    (project / "issues" / "2026-12-07-fr.yaml").write_text(
        "subject: Français\ndate: 2026-12-07\nlanguage: fr\nlist: campaigns\nblocks:\n  - type: headline\n"
        "    title: T\n    date: 2026-12-07\n    body: Salut.\n")
    single_list(project)
    r = run(["archive", "--include-future"], cwd=project)
    assert r.returncode == 0, r.stderr
    index = (project / "build" / "archive" / "index.html").read_text()
    config = load_config(project / "newsletter.toml")
    day = __import__("datetime").date(2026, 12, 7)
    for language, want in (("en", "7 December 2026"), ("fr", "7 décembre 2026")):
        assert want == format_date(day, format="d MMMM y", locale=language)
        assert f'<time datetime="2026-12-07">{want}</time>' in index
        email = build_issue(project / "issues" / f"2026-12-07-{language}.yaml", config, write=False).rendered.html
        assert want in email
    assert "December 7, 2026" not in index
