"""`newsletter archive` with several lists: one site per list in build/archive/<list-id>/, each with
its own index, feed and issues, published at its list's base_url where its emails' web links point.
The example project as it is: FIDH's `campaigns` (at [site] base_url) and Viasna's `digest` (its own
base_url). A one-list project's build/archive/ layout: tests/test_archive.py."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

from tests.conftest import run
from tests.test_archive import links_of
from tests.tomledit import DELETE, edit_toml, line_of

ATOM = "{http://www.w3.org/2005/Atom}"
FIDH = "2011-11-28-free-ales-bialiatski"
DIGEST = "2013-12-10-solidarity-with-ales-bialiatski"
SITES = {"campaigns": ("https://news.example.org/", FIDH, "FIDH campaign news",
                       "FIDH - International Federation for Human Rights"),
         "digest": ("https://spring96.example.org/digest/", DIGEST, "Viasna digest", "Human Rights Centre “Viasna”")}


def _view_in_browser(project: Path, slug: str) -> str:
    """The web link of the email `newsletter build` wrote: where the reader's click goes."""
    html = (project / "build" / slug / "email.html").read_text(encoding="utf-8")
    links = set(re.findall(r'href="([^"]+/issues/[^"]+)"', html))
    assert len(links) == 1, links
    return links.pop()


def test_each_list_gets_its_own_site(project: Path) -> None:
    edit_toml(project / "newsletter.toml", {"lists.digest.default_language": "be"})
    r = run(["build", "issues/"], cwd=project)
    assert r.returncode == 0, r.stderr
    r = run(["archive"], cwd=project)
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""  # the two lists are published at different addresses: no warning
    archive = project / "build" / "archive"
    assert sorted(p.name for p in archive.iterdir()) == ["campaigns", "digest"]  # nothing of one site at the top
    for key, (url, slug, name, org) in SITES.items():
        site = archive / key
        assert (f"archive  build/archive/{key}/  {key} ({name}): 1 issue, publish at {url}\n"
                f"         {slug[:10]}  ") in r.stdout
        # the index: the list's name and organisation, only its own issue
        index = (site / "index.html").read_text(encoding="utf-8")
        assert f"<title>{name}</title>" in index and f"<h1>{name}</h1>" in index and org in index
        assert [h for h in links_of(site / "index.html") if h.startswith("issues/")] == [f"issues/{slug}/index.html"]
        other = next(s for k, (_, s, _, _) in SITES.items() if k != key)
        assert other not in index
        # the email's "view in browser" link resolves once the site is published at the list's address
        link = _view_in_browser(project, slug)
        assert link == f"{url}issues/{slug}/"
        page = site / link[len(url):] / "index.html"
        assert page.is_file() and "../../index.html" in links_of(page)
        # its own feed: the list's title and organisation, absolute links at the list's address
        feed = ET.parse(site / "feed.xml").getroot()
        assert feed.find(f"{ATOM}title").text == name and feed.find(f"{ATOM}subtitle").text == org
        assert feed.find(f"{ATOM}id").text == url
        assert {link.get("rel"): link.get("href") for link in feed.findall(f"{ATOM}link")} == {
            "self": f"{url}feed.xml", "alternate": url}
        assert [e.find(f"{ATOM}id").text for e in feed.findall(f"{ATOM}entry")] == [link]
    # each index in its list's language
    assert '<html lang="en" dir="ltr">' in (archive / "campaigns" / "index.html").read_text(encoding="utf-8")
    digest = (archive / "digest" / "index.html").read_text(encoding="utf-8")
    assert '<html lang="be" dir="ltr">' in digest and "1 выпуск" in digest
    assert not list((project / "build").glob(".archive*"))  # no temporary folders left


def test_list_option_rewrites_only_that_site(project: Path) -> None:
    r = run(["archive"], cwd=project)
    assert r.returncode == 0, r.stderr
    campaigns = project / "build" / "archive" / "campaigns"
    before = {p: p.read_bytes() for p in campaigns.rglob("*") if p.is_file()}
    (project / "issues" / "2014-01-20-digest-two.yaml").write_text(
        "subject: Second digest\ndate: 2014-01-20\nlist: digest\nblocks:\n  - type: section\n    body: Hello.\n")
    (project / "issues" / "2014-01-21-campaign-two.yaml").write_text(
        "subject: Second campaign\ndate: 2014-01-21\nlist: campaigns\nblocks:\n  - type: section\n    body: Hi.\n")
    r = run(["archive", "--list", "digest"], cwd=project)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == ("archive  build/archive/digest/  digest (Viasna digest): 2 issues, "
                                        "publish at https://spring96.example.org/digest/")
    assert "campaigns" not in r.stdout
    digest = project / "build" / "archive" / "digest"
    assert [h for h in links_of(digest / "index.html") if h.startswith("issues/")] == [
        "issues/2014-01-20-digest-two/index.html", f"issues/{DIGEST}/index.html"]
    # the other list's site is exactly as it was: not rebuilt, not removed
    assert {p: p.read_bytes() for p in campaigns.rglob("*") if p.is_file()} == before
    assert "Second campaign" not in (campaigns / "index.html").read_text(encoding="utf-8")


def test_list_option_names_an_existing_list(project: Path) -> None:
    r = run(["archive", "--list", "digst"], cwd=project)
    assert r.returncode == 1
    assert r.stderr.strip() == "--list digst: no such list; the lists are: campaigns, digest"
    assert r.stdout == "" and not (project / "build").exists()


def test_a_list_without_issues_gets_an_empty_site(project: Path) -> None:
    edit_toml(project / "newsletter.toml", {"lists.alerts": {
        "name": "FIDH urgent alerts", "id": "alerts.news.example.org", "base_url": "https://alerts.example.org"}})
    r = run(["archive"], cwd=project)
    assert r.returncode == 0, r.stderr
    assert ("archive  build/archive/alerts/  alerts (FIDH urgent alerts): 0 issues, "
            "publish at https://alerts.example.org/") in r.stdout
    site = project / "build" / "archive" / "alerts"
    assert "No issues yet." in (site / "index.html").read_text(encoding="utf-8")
    feed = ET.parse(site / "feed.xml").getroot()
    assert feed.find(f"{ATOM}id").text == "https://alerts.example.org/" and not feed.findall(f"{ATOM}entry")


def test_lists_at_one_address_are_warned_about(project: Path) -> None:
    """Without its own base_url the digest would be published where the campaigns' site is: its
    index.html and feed.xml would overwrite the other's, so the archive says so (and still writes)."""
    edit_toml(project / "newsletter.toml", {"lists.digest.base_url": DELETE})
    r = run(["archive"], cwd=project)
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip() == (
        "warning: lists campaigns, digest share one address, https://news.example.org/: one site's index.html "
        "and feed.xml would overwrite the other's there; give each list its own [lists.<id>] base_url in "
        "newsletter.toml")
    assert (project / "build" / "archive" / "digest" / "issues" / DIGEST / "index.html").is_file()


def test_one_lists_table_keeps_the_one_site_layout(project: Path) -> None:
    """A project with a single [lists.<id>] table is a one-list project: build/archive/ itself."""
    edit_toml(project / "newsletter.toml", {"lists.digest": DELETE})
    (project / "issues" / f"{DIGEST}.yaml").unlink()
    r = run(["archive"], cwd=project)
    assert r.returncode == 0, r.stderr
    site = project / "build" / "archive"
    assert r.stdout.splitlines()[0] == ("archive  build/archive/ (1 issue: index.html, feed.xml, "
                                        "issues/<id>/index.html)")
    assert (site / "index.html").is_file() and (site / "issues" / FIDH / "index.html").is_file()
    assert not (site / "campaigns").exists()


def test_a_bad_list_base_url_is_one_line(project: Path) -> None:
    edit_toml(project / "newsletter.toml", {"lists.digest.base_url": "ftp://spring96.example.org/"})
    line = line_of(project / "newsletter.toml", 'base_url = "ftp:')
    r = run(["archive"], cwd=project)
    assert r.returncode == 1
    assert r.stderr.strip() == (f"newsletter.toml:{line}: lists.digest.base_url: 'ftp://spring96.example.org/': "
                                "scheme 'ftp' not allowed (use https or http)")
    assert r.stdout == "" and not (project / "build").exists()
