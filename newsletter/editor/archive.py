"""`newsletter archive`: every issue as a static web site, with an Atom feed; one site per list.

The "view in browser" link of each email points at `<archive_url>/issues/<slug>/`, where
`archive_url` is the list's own `base_url` (else `[site] base_url`); a list's site is the folder
to publish there, so those links work once it is uploaded to any static host. A project with
one list writes its site straight into build/archive/, as before lists; with several, each
list's site is build/archive/<list-id>/: its own index (the list's name, organisation and
language), its own feed, only its own issues. Pages link to each other relatively (a site can
be browsed straight from disk, or moved under another path); the feed's links are absolute,
because a feed is read away from the site, and Atom ids must be.

Like `build`, it writes everything or nothing: every issue of the lists asked for must build
first, then the folder is replaced in one rename.
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

from newsletter import lists
from newsletter.compose import i18n
from newsletter.compose.build import Built, build_issue, load_with_editions, main_path
from newsletter.compose.render import fill_web
from newsletter.config import Config
from newsletter.errors import InputError, NewsletterError, Problem
from newsletter.paths import staging_dir

ATOM = "http://www.w3.org/2005/Atom"


class ArchiveError(NewsletterError):
    """The archive cannot be written as asked (an unknown list)."""


@dataclass(frozen=True)
class Entry:
    slug: str
    date: dt.date
    title: str
    summary: str
    url: str  # absolute: where the page is published
    href: str  # relative to the archive's root
    day: str  # the date as the issue's language writes it
    lang: str = "en"
    language_name: str = ""  # the language, named in itself ("français"), for the links between editions
    editions: tuple[Entry, ...] = ()  # the issue's editions in other languages


def issue_files(folder: Path) -> list[Path]:
    """The issues in `folder`: an edition (`<id>.<lang>.yaml`) is built with its issue, not alone."""
    return list(dict.fromkeys(main_path(p) for p in sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")])))


@dataclass(frozen=True)
class Site:
    """One list's archive: the folder to publish at `url`, and the issues in it, newest first."""

    config: Config  # the list's
    out_dir: Path
    entries: list[Entry]

    @property
    def list_key(self) -> str:
        return self.config.list_key

    @property
    def url(self) -> str:
        """Where the folder is to be published (its emails' web links point there), with a final slash."""
        return self.config.archive_url + "/"


@dataclass(frozen=True)
class Archive:
    """What `build_archive` wrote (one site per list), and the issues it left out because they are dated later."""

    sites: list[Site]
    future: list[Built]

    def clashes(self) -> list[tuple[str, list[str]]]:
        """(url, list ids) where several lists' sites would be published at the same address: their
        index.html and feed.xml cannot both be there, so some emails' web links would not resolve."""
        by_url: dict[str, list[str]] = {}
        for site in self.sites:
            by_url.setdefault(site.url, []).append(site.list_key)
        return [(url, keys) for url, keys in by_url.items() if len(keys) > 1]


def build_archive(config: Config, issues_dir: Path | None = None, out_dir: Path | None = None, *,
                  list_key: str | None = None, include_future: bool = False,
                  today: dt.date | None = None) -> Archive:
    """Build the issues in `issues_dir` and write each list's site under `out_dir` (build/archive/):
    `out_dir` itself for a project with one list, `out_dir/<list-id>/` with several. `list_key`
    writes only that list's site (only its issues are built; the other sites stay as they are).

    Issues dated after `today` (scheduled, not sent yet) are left out unless `include_future`:
    publishing one would put it on the web, and in the feed, before it reaches the inbox."""
    project = config.base or config
    issues_dir = issues_dir or project.root / "issues"
    out_dir = out_dir or project.build_dir / "archive"
    today = today or dt.date.today()
    every = lists.keys(project)
    keys = [list_key] if list_key is not None else every
    several = len(every) > 1
    built: list[Built] = []
    problems: list[Problem] = []
    for path in issue_files(issues_dir):
        try:
            if list_key is not None and _list_of(path, project) != list_key:
                continue
            built.append(build_issue(path, project, write=False))
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
    # one folder replaced in one rename: the whole archive, or (--list of several) that list's site
    root = out_dir / list_key if several and list_key is not None else out_dir
    files: dict[str, str] = {}
    sites: list[Site] = []
    for key in keys:
        site_config = project.for_list(key)
        prefix = f"{key}/" if several and list_key is None else ""
        mine = [b for b in built if b.config.list_key == key]
        entries = [_entry(b) for b in mine]
        files[f"{prefix}index.html"] = index_html(site_config, entries)
        files[f"{prefix}feed.xml"] = atom_feed(site_config, entries)
        for b, e in zip(mine, entries, strict=True):
            for edition, entry in zip(b.all(), (e, *e.editions), strict=True):
                files[f"{prefix}{entry.href}index.html"] = issue_page(edition)
        sites.append(Site(config=site_config, out_dir=root / prefix if prefix else root, entries=entries))
    _write_tree(root, files)
    return Archive(sites=sites, future=sorted(future, key=lambda b: (b.issue.date, b.slug)))


def _list_of(path: Path, project: Config) -> str:
    """The list an issue file names, without rendering it (InputError if it cannot be read)."""
    issue, _ = load_with_editions(path)
    return project.for_issue(issue).list_key


def _entry(b: Built) -> Entry:
    language = b.language
    return Entry(slug=b.slug, date=b.issue.date, title=fill_web(b.issue.subject, b.issue, b.config),
                 summary=fill_web(b.issue.preheader or "", b.issue, b.config),
                 url=b.web_url, href=f"issues/{b.slug}/" + (f"{b.edition}/" if b.edition else ""),
                 day=i18n.format_date(b.issue.date, language),  # the email's own date style
                 lang=language, language_name=i18n.language_name(language),
                 editions=tuple(_entry(e) for e in b.editions))


def issue_page(b: Built) -> str:
    """The web version, with a way back to the index (relative: ../../, an edition ../../../)."""
    from html import escape

    up = "../../../" if b.edition else "../../"
    language, config = b.language, b.config

    def _(message: str) -> str:
        return escape(i18n.gettext(language, message, config.locale_dir, config.default_language))

    back = "&rarr;" if i18n.is_rtl(language) else "&larr;"  # back points towards where lines start
    nav = (f'<div dir="{i18n.direction(language)}" style="font:14px/1.4 Helvetica,Arial,sans-serif;padding:8px 12px;'
           f'text-align:center"><a href="{up}index.html">{back} {_("All issues")}</a> &middot; '
           f'<a href="{up}feed.xml">{_("Atom feed")}</a></div>')
    html = b.rendered.web_html
    m = re.search(r"<body\b[^>]*>", html, re.I)
    return html[: m.end()] + nav + html[m.end():] if m else nav + html


_INDEX = """<!doctype html>
<html lang="{{ lang }}" dir="{{ dir }}">
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
<p class="org">{{ org }} &middot; {{ ngettext("%(num)d issue", "%(num)d issues", entries | length) }}
  &middot; <a href="feed.xml">{{ _("Atom feed") }}</a></p>
{% if entries %}
<ol>
{% for e in entries %}
  <li><time datetime="{{ e.date.isoformat() }}">{{ e.day }}</time>
    <a class="title" href="{{ e.href }}index.html">{{ e.title }}</a>
    {% if e.summary %}<p>{{ e.summary }}</p>{% endif %}
    {% if e.editions %}<p class="editions">
      {%- for x in e.editions %}<a href="{{ x.href }}index.html" hreflang="{{ x.lang }}" lang="{{ x.lang }}">
      {{- x.language_name }}: <span dir="auto">{{ x.title }}</span></a>{% if not loop.last %} &middot; {% endif %}
      {%- endfor %}</p>{% endif %}</li>
{% endfor %}
</ol>
{% else %}
<p>{{ _("No issues yet.") }}</p>
{% endif %}
</body>
</html>
"""


def index_html(config: Config, entries: list[Entry]) -> str:
    """The archive's front page, in the list's default language."""
    language = config.default_language
    env = jinja2.Environment(autoescape=True, extensions=["jinja2.ext.i18n"])
    env.install_gettext_translations(  # type: ignore[attr-defined]
        i18n.translations(language, config.locale_dir, language), newstyle=True)
    return env.from_string(_INDEX).render(lang=language, dir=i18n.direction(language), title=config.list_name,
                                          org=config.org_name, entries=entries)


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

    root = config.archive_url + "/"
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
    for e in (x for issue in entries for x in (issue, *issue.editions)):  # each edition is an entry too
        entry = sub(feed, "entry")
        if e.lang != config.default_language:
            entry.set("{http://www.w3.org/XML/1998/namespace}lang", e.lang)
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
