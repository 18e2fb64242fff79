"""`newsletter build`: validate an issue, render it, and write build/<issue>/ atomically.

Either every output file is written or none is: outputs go to a temporary folder that
replaces the old one in one rename, so a failed build never leaves a half-written issue.
`build_many` renders every issue first and writes only when all of them are good, so one
run reports every problem and a bad issue never leaves its neighbours half-updated.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from newsletter.compose import i18n
from newsletter.compose.issue import Issue, edition_of, editions_of, load_issue
from newsletter.config import Config
from newsletter.deliver.placeholders import STANDARD_FIELDS, Template
from newsletter.errors import InputError, Problem
from newsletter.paths import display, staging_dir

if TYPE_CHECKING:
    from newsletter.compose.render import Rendered

GMAIL_CLIP_BYTES = 102 * 1024
#: Above this the summary warns that the next edit may cross Gmail's clip.
NEAR_CLIP_BYTES = 90 * 1024
#: Inboxes cut subjects around here (Gmail on a phone shows ~40, desktop ~70-80).
SUBJECT_WARN_CHARS = 80
#: What a realistic reader looks like when sizing the email (Gmail clips above 102 KB).
SAMPLE_RECIPIENT = {
    "name": "Maximilian Alexander Featherstonehaugh-Bialiatski",
    "email": "maximilian.featherstonehaugh@example-subscriber.org",
    "unsubscribe_url": "https://news.example.org/unsubscribe/" + "x" * 120,
}
OUTPUTS = ("email.html", "email.txt", "web.html")


@dataclass(frozen=True)
class Built:
    """A built issue: what `send` needs, in memory."""

    issue: Issue
    config: Config
    rendered: Rendered
    out_dir: Path
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0
    #: The issue's editions in other languages (`issues/<id>.<lang>.yaml`), each built alike,
    #: written to build/<id>/<lang>/. Empty for an edition itself.
    editions: tuple[Built, ...] = ()
    #: For an edition: the issue it is an edition of (what `check` compares its blocks with).
    main: Issue | None = None

    @property
    def slug(self) -> str:
        return self.issue.slug

    @property
    def language(self) -> str:
        return self.config.language_of(self.issue)

    @property
    def edition(self) -> str | None:
        """The edition's language tag; None for the issue itself."""
        return self.issue.edition

    @property
    def web_url(self) -> str:
        return self.config.web_url(self.slug, self.edition)

    def all(self) -> tuple[Built, ...]:
        """The issue, then its editions."""
        return (self, *self.editions)

    def for_language(self, tag: str | None) -> Built:
        """The edition a reader of `tag` gets: along the tag (pt-BR, then pt), else the issue itself."""
        if not self.editions or not tag:
            return self
        by_tag = {e.edition.lower(): e for e in self.editions if e.edition}
        for form in i18n.along(tag.replace("_", "-").lower()):
            if form in by_tag:
                return by_tag[form]
        return self

    def sample_html_bytes(self) -> int:
        """Size of the HTML part with a realistic recipient filled in."""
        filled = Template(self.rendered.html, escape_html=True).fill(SAMPLE_RECIPIENT)
        return len(filled.encode("utf-8"))


def main_path(issue_path: Path) -> Path:
    """The issue file an edition belongs to (itself for an issue, or an edition whose issue is missing)."""
    found = edition_of(issue_path)
    if found is None:
        return issue_path
    for candidate in (found[0], found[0].with_suffix(".yml" if found[0].suffix == ".yaml" else ".yaml")):
        if candidate.is_file():
            return candidate
    return issue_path


def load_with_editions(issue_path: Path) -> tuple[Issue, list[Issue]]:
    """An issue (given by its file or by one of its editions' files) and all its editions, validated;
    InputError with every problem of every file."""
    path = main_path(issue_path)
    problems: list[Problem] = []
    issue: Issue | None = None
    editions: list[Issue] = []
    for p in (path, *(editions_of(path) if path != issue_path or edition_of(path) is None else [])):
        try:
            loaded = load_issue(p, display=display(p))
        except InputError as e:
            problems.extend(e.problems)
            continue
        if issue is None and p == path:
            issue = loaded
        else:
            editions.append(loaded)
    if issue is not None:
        seen = {issue.language: path}
        for e in editions:
            if e.language in seen:
                other = seen[e.language]
                problems.append(Problem(display(e.path), None, "language",
                                        f"{e.language}: {display(other)} is already in that language"))
            seen[e.language] = e.path
        editions = [_in_list_of(issue, e, problems) for e in editions]
    if problems:
        raise InputError(problems)
    assert issue is not None
    return issue, editions


def _in_list_of(issue: Issue, edition: Issue, problems: list[Problem]) -> Issue:
    """An edition goes to its issue's readers: it inherits the issue's `list:`; naming another
    list is a problem (FILE:LINE: list), since one send cannot go to two lists."""
    if edition.list_key is None or edition.list_key == issue.list_key:
        return dataclasses.replace(edition, list_key=issue.list_key, list_line=issue.list_line)
    where = f"'{issue.list_key}'" if issue.list_key is not None else "none"
    problems.append(Problem(display(edition.path), edition.list_line, "list",
                            f"'{edition.list_key}': an edition goes to its issue's list ({display(issue.path)} names "
                            f"{where}); leave `list:` out of the edition or make it the same"))
    return edition


def build_issue(issue_path: Path, config: Config, *, write: bool = True) -> Built:
    """Load, validate and render an issue and its editions; with `write`, replace build/<slug>/
    (editions in build/<slug>/<lang>/) atomically. An edition's file stands for its whole issue."""
    started = time.perf_counter()
    issue, edition_issues = load_with_editions(issue_path)
    config = config.for_issue(issue)  # the list it names (its editions' too): sender, List-Id, organisation
    i18n.check_project(config.locale_dir)
    from newsletter.compose.render import render_issue  # Jinja2, Markdown, MRML: only once the issue is valid

    out_dir = config.build_dir / issue.slug
    alternates = [(config.language_of(i), config.web_url(i.slug, i.edition)) for i in (issue, *edition_issues)]
    editions = []
    for e in edition_issues:
        rendered = render_issue(e, config, alternates)
        ed = Built(issue=e, config=config, rendered=rendered, out_dir=out_dir / (e.edition or ""), main=issue)
        ed.warnings.extend(_warnings(ed))
        editions.append(ed)
    rendered = render_issue(issue, config, alternates)
    built = Built(issue=issue, config=config, rendered=rendered, out_dir=out_dir,
                  seconds=time.perf_counter() - started, editions=tuple(editions))
    built.warnings.extend(_warnings(built))
    if write:
        write_built(built)
    return built


def build_many(paths: Iterable[Path], config: Config) -> list[Built]:
    """Build every issue; write them only if all are good, else raise one InputError with every problem."""
    built: list[Built] = []
    problems: list[Problem] = []
    seen: dict[str, Path] = {}
    for path in dict.fromkeys(main_path(p) for p in paths):  # an edition stands for its issue
        try:
            b = build_issue(path, config, write=False)
        except InputError as e:
            problems.extend(e.problems)
            continue
        if b.slug in seen:
            problems.append(Problem(display(path), None, "",
                                    f"builds to the same folder as {display(seen[b.slug])} (build/{b.slug}/)"))
            continue
        seen[b.slug] = path
        built.append(b)
    if problems:
        raise InputError(problems)
    for b in built:
        write_built(b)
    return built


def _warnings(built: Built) -> list[str]:
    out = []
    size = built.sample_html_bytes()
    if size > GMAIL_CLIP_BYTES:
        out.append(f"email.html is {size / 1024:.1f} KB: Gmail clips messages over 102 KB "
                   "(and hides the unsubscribe link with the rest)")
    elif size > NEAR_CLIP_BYTES:
        out.append(f"email.html is {size / 1024:.1f} KB: close to Gmail's 102 KB clipping limit")
    note = i18n.resolve(built.language, built.config.default_language, built.config.locale_dir).note
    if note:
        out.append(note)
    if not built.issue.preheader:
        out.append("no preheader: inboxes will show the first text of the email instead")
    if len(built.issue.subject) > SUBJECT_WARN_CHARS:
        out.append(f"subject is {len(built.issue.subject)} characters: inboxes cut it around {SUBJECT_WARN_CHARS}")
    named = re.match(r"(\d{4}-\d{2}-\d{2})", built.slug)
    if named and named.group(1) != built.issue.date.isoformat():
        out.append(f"the file name says {named.group(1)} but the issue's date is {built.issue.date.isoformat()}")
    extra = sorted(set(built.rendered.fields) - set(STANDARD_FIELDS))
    if extra:
        names = ", ".join("{{ " + f + " }}" for f in extra)
        out.append(f"{names}: not a standard field (name, email, unsubscribe_url); "
                   "each must be a column of the subscriber CSV or it stays empty")
    return out


def write_built(built: Built) -> None:
    """Replace build/<slug>/ with this build's files (editions in <lang>/), all at once."""
    files = _files(built)
    for e in built.editions:
        files.update({f"{e.edition}/{name}": text for name, text in _files(e).items()})
    _write_folder(built, files)


def _files(built: Built) -> dict[str, str]:
    r = built.rendered
    return {
        "email.html": r.html,
        "email.txt": r.text,
        "web.html": r.web_html,
        "email.mjml": r.mjml,
        "meta.json": json.dumps(
            {
                "slug": built.slug,
                "subject": built.issue.subject,
                "preheader": built.issue.preheader,
                "title": built.issue.title,
                "date": built.issue.date.isoformat(),
                "language": built.language,
                "fields": sorted(r.fields),
                "web_url": built.web_url,
                **({"edition": built.edition} if built.edition else {}),
                **({"editions": {e.edition: {"language": e.language, "subject": e.issue.subject,
                                             "title": e.issue.title, "web_url": e.web_url}
                                 for e in built.editions}} if built.editions else {}),
            },
            indent=2,
            ensure_ascii=False,
        ) + "\n",
    }


def _write_folder(built: Built, files: dict[str, str]) -> None:
    parent = built.out_dir.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = staging_dir(parent, f".{built.slug}.")
    except OSError as e:
        raise InputError([Problem(display(parent), None, "build_dir",
                                  f"cannot write the build here: {e.strerror or e}")]) from None
    try:
        for name, text in files.items():
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp / name).write_text(text, encoding="utf-8")
        old = None
        if built.out_dir.exists():
            old = parent / f".{built.slug}.old.{os.getpid()}"
            os.replace(built.out_dir, old)
        os.replace(tmp, built.out_dir)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise InputError([Problem(display(built.out_dir), None, "build_dir",
                                  f"cannot write the build here: {e.strerror or e}")]) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


_HREF = re.compile(r'\bhref="([^"]+)"', re.I)


def summary(built: Built) -> list[str]:
    """The one-screen summary `newsletter build` prints: what was built, how big, what to fix."""
    r = built.rendered
    size = built.sample_html_bytes()
    margin = (GMAIL_CLIP_BYTES - size) / 1024
    links = {u for u in _HREF.findall(r.html) if not u.startswith("{{")}
    language = built.language
    lines = [
        f"built      {display(built.out_dir)}/  ({', '.join(OUTPUTS)})  in {built.seconds:.2f} s",
        f"subject    {built.issue.subject}",
        f"preheader  {built.issue.preheader or '-'}",
        f"content    {_n(len(built.issue.blocks), 'block')}, {_n(_count_images(built.issue.blocks), 'image')}, "
        f"{_n(len(links), 'link')}; language {language}",
        f"email      {size / 1024:.1f} KB HTML with a sample reader, "
        + (f"{margin:.1f} KB under Gmail's 102 KB clip" if margin >= 0
           else f"{-margin:.1f} KB OVER Gmail's 102 KB clip"),
        f"           {len(r.text.encode('utf-8')) / 1024:.1f} KB text; "
        f"fields {', '.join(sorted(r.fields)) or '-'}",
        f"web        {built.web_url}",
    ]
    lines += [f"warning    {w}" for w in built.warnings]
    for e in built.editions:
        lines.append(f"edition    {e.edition}: {display(e.out_dir)}/  {e.issue.subject}")
        lines += [f"warning    {e.edition}: {w}" for w in e.warnings]
    return lines


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'s' * (count != 1)}"


def _count_images(value: object) -> int:
    """Images the editor put in the issue (block images, galleries, video thumbnails)."""
    if isinstance(value, dict):
        own = 1 if "src" in value and "alt" in value else 0
        return own + sum(_count_images(v) for v in value.values())
    if isinstance(value, list):
        return sum(_count_images(v) for v in value)
    return 0

