"""`newsletter archive`: every issue as a static web site, with an Atom feed.

The "view in browser" link of each email points at `<base_url>/issues/<slug>/`; the
archive is the folder to publish at `<base_url>/`, so those links work once it is
uploaded to any static host. Pages link to each other relatively (it can be browsed
straight from disk, or moved under another path); the feed's links are absolute, because
a feed is read away from the site, and Atom ids must be.

Like `build`, it writes everything or nothing: all issues must build first, then the
folder is replaced in one rename.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import jinja2

from newsletter.compose import i18n
from newsletter.compose.build import Built, build_issue
from newsletter.compose.render import fill_web
from newsletter.config import Config
from newsletter.errors import InputError, Problem
from newsletter.paths import staging_dir

ATOM = "http://www.w3.org/2005/Atom"


@dataclass(frozen=True)
class Entry:
    slug: str
    date: dt.date
    title: str
    summary: str
    url: str  # absolute: where the page is published
    href: str  # relative to the archive's root
    day: str  # the date as the issue's language writes it


def issue_files(folder: Path) -> list[Path]:
    return sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")])


@dataclass(frozen=True)
class Archive:
    """What `build_archive` wrote, and the issues it left out because they are dated later."""

    entries: list[Entry]
    future: list[Built]


def build_archive(config: Config, issues_dir: Path | None = None, out_dir: Path | None = None, *,
                  include_future: bool = False, today: dt.date | None = None) -> Archive:
    """Build every issue in `issues_dir` and write the site to `out_dir` (build/archive/).

    Issues dated after `today` (scheduled, not sent yet) are left out unless `include_future`:
    publishing one would put it on the web, and in the feed, before it reaches the inbox."""
    issues_dir = issues_dir or config.root / "issues"
    out_dir = out_dir or config.build_dir / "archive"
    today = today or dt.date.today()
    built: list[Built] = []
    problems: list[Problem] = []
    for path in issue_files(issues_dir):
        try:
            built.append(build_issue(path, config, write=False))
        except InputError as e:
            problems.extend(e.problems)
    if problems:
        raise InputError(problems)
    future = [] if include_future else [b for b in built if b.issue.date > today]
    built = [b for b in built if include_future or b.issue.date <= today]
    slugs = [b.slug for b in built]
    if len(set(slugs)) != len(slugs):
        dup = next(s for s in slugs if slugs.count(s) > 1)
        raise InputError([Problem(str(issues_dir), None, "", f"two issue files share the id '{dup}'")])
    built.sort(key=lambda b: (b.issue.date, b.slug), reverse=True)
    entries = [_entry(b) for b in built]
    files: dict[str, str] = {"index.html": index_html(config, entries), "feed.xml": atom_feed(config, entries)}
    for b, e in zip(built, entries, strict=True):
        files[f"{e.href}index.html"] = issue_page(b)
    _write_tree(out_dir, files)
    return Archive(entries=entries, future=sorted(future, key=lambda b: (b.issue.date, b.slug)))


def _entry(b: Built) -> Entry:
    language = b.language
    return Entry(slug=b.slug, date=b.issue.date, title=fill_web(b.issue.subject, b.issue, b.config),
                 summary=fill_web(b.issue.preheader or "", b.issue, b.config),
                 url=b.config.web_url(b.slug), href=f"issues/{b.slug}/",
                 day=i18n.format_date(b.issue.date, language))  # the email's own date style


def issue_page(b: Built) -> str:
    """The web version, with a way back to the index (relative: ../../)."""
    nav = ('<div style="font:14px/1.4 Helvetica,Arial,sans-serif;padding:8px 12px;text-align:center">'
           '<a href="../../index.html">&larr; All issues</a> &middot; <a href="../../feed.xml">Atom feed</a></div>')
    html = b.rendered.web_html
    m = re.search(r"<body\b[^>]*>", html, re.I)
    return html[: m.end()] + nav + html[m.end():] if m else nav + html


_INDEX = jinja2.Environment(autoescape=True).from_string("""<!doctype html>
<html lang="{{ lang }}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>{{ title }}</title>
<link rel="alternate" type="application/atom+xml" title="{{ title }}" href="feed.xml">
<style>
  body { font: 16px/1.5 Helvetica, Arial, sans-serif; max-width: 640px; margin: 0 auto; padding: 24px 16px;
         color: #1f2328; background: #fff; }
  h1 { font-size: 26px; margin: 0 0 4px; } .org { color: #57606a; margin: 0 0 24px; }
  ol { list-style: none; padding: 0; } li { margin: 0 0 20px; }
  a { color: #b3001b; } time { color: #57606a; font-size: 14px; display: block; }
  .title { font-size: 19px; font-weight: bold; } p { margin: 2px 0 0; }
  @media (prefers-color-scheme: dark) {
    body { background: #121212; color: #e6e6e6; } a { color: #ff8a8a; } .org, time { color: #b0b0b0; }
  }
</style>
</head>
<body>
<h1>{{ title }}</h1>
<p class="org">{{ org }} &middot; <a href="feed.xml">Atom feed</a></p>
{% if entries %}
<ol>
{% for e in entries %}
  <li><time datetime="{{ e.date.isoformat() }}">{{ e.day }}</time>
    <a class="title" href="{{ e.href }}index.html">{{ e.title }}</a>
    {% if e.summary %}<p>{{ e.summary }}</p>{% endif %}</li>
{% endfor %}
</ol>
{% else %}
<p>No issues yet.</p>
{% endif %}
</body>
</html>
""")


def index_html(config: Config, entries: list[Entry]) -> str:
    return _INDEX.render(lang=config.default_language, title=config.list_name, org=config.org_name,
                         entries=entries)


def atom_feed(config: Config, entries: list[Entry], *, now: dt.datetime | None = None) -> str:
    """An Atom 1.0 feed (RFC 4287), one entry per issue, newest first."""
    ET.register_namespace("", ATOM)

    def sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
        el = ET.SubElement(parent, f"{{{ATOM}}}{tag}", attrs)
        if text is not None:
            el.text = text
        return el

    def stamp(day: dt.date) -> str:
        return f"{day.isoformat()}T00:00:00Z"

    root = config.base_url + "/"
    feed = ET.Element(f"{{{ATOM}}}feed", {"{http://www.w3.org/XML/1998/namespace}lang": config.default_language})
    sub(feed, "title", config.list_name)
    sub(feed, "subtitle", config.org_name)
    sub(feed, "id", root)
    sub(feed, "link", rel="self", type="application/atom+xml", href=root + "feed.xml")
    sub(feed, "link", rel="alternate", type="text/html", href=root)
    updated = stamp(entries[0].date) if entries else (now or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    sub(feed, "updated", updated)
    author = sub(feed, "author")
    sub(author, "name", config.org_name)
    if config.org_website:
        sub(author, "uri", config.org_website)
    for e in entries:
        entry = sub(feed, "entry")
        sub(entry, "title", e.title)
        sub(entry, "id", e.url)
        sub(entry, "link", rel="alternate", type="text/html", href=e.url)
        sub(entry, "published", stamp(e.date))
        sub(entry, "updated", stamp(e.date))
        if e.summary:
            sub(entry, "summary", e.summary)
    ET.indent(feed)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(feed, encoding="unicode") + "\n"


def _write_tree(out_dir: Path, files: dict[str, str]) -> None:
    parent = out_dir.parent
    parent.mkdir(parents=True, exist_ok=True)
    tmp = staging_dir(parent, f".{out_dir.name}.")
    try:
        for rel, text in files.items():
            path = tmp / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        old = None
        if out_dir.exists():
            old = parent / f".{out_dir.name}.old.{os.getpid()}"
            os.replace(out_dir, old)
        os.replace(tmp, out_dir)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
