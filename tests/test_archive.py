"""`newsletter archive`: a static site of every issue, newest first, and an Atom feed."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import yaml

from newsletter.config import load_config
from tests.conftest import run

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
        "subject: An older issue for {{ name }}\ndate: 2010-01-05\nblocks:\n  - type: section\n    body: Hello.\n")
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
