"""An issue: the editor's YAML file, validated into a plain structure templates can render.

Every block type has its own fields and its own template (`blocks/<type>.mjml.j2`). All
problems in a file are reported in one run, each as `FILE:LINE: field.path: message`.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from newsletter.compose.i18n import language_spec, normalise
from newsletter.compose.schema import Checker, Date, Int, ListOf, Markdown, Obj, OneOf, Spec, Str, Url, kind_of
from newsletter.compose.source import line_of, load_yaml_lenient
from newsletter.errors import InputError, Problem

SLUG = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")

Image = Obj(
    {"src": Url(schemes=("https", "http")), "alt": Str(max_len=300), "width": Int(minimum=1, maximum=1200),
     "height": Int(minimum=1, maximum=3000), "caption": Str(max_len=300)},
    required=("src", "alt"),
)
#: A link the editor names; `label` overrides the theme's (translated) default text.
Link = Obj({"url": Url(), "label": Str(max_len=200)}, required=("url",))
_LABEL = Str(max_len=100)

BLOCKS: dict[str, Obj] = {
    "headline": Obj({"type": Str(), "kicker": Str(max_len=200), "title": Str(max_len=300), "date": Date(),
                     "image": Image, "body": Markdown(), "link": Link},
                    required=("title", "body")),
    "videos": Obj({"type": Str(), "heading": Str(max_len=200), "intro": Markdown(max_len=5000),
                   "items": ListOf(Obj({"thumbnail": Image, "caption": Str(max_len=300), "url": Url()},
                                       required=("thumbnail", "caption", "url")), min_items=1, max_items=12)},
                  required=("items",)),
    "gallery": Obj({"type": Str(), "heading": Str(max_len=200), "intro": Markdown(max_len=5000),
                    "items": ListOf(Obj({"label": Str(max_len=300), "url": Url(), "image": Image},
                                        required=("label", "url")), min_items=1, max_items=30)},
                   required=("items",)),
    "quotes": Obj({"type": Str(), "heading": Str(max_len=200), "link_label": _LABEL,
                   "items": ListOf(Obj({"text": Markdown(max_len=5000), "author": Str(max_len=200),
                                        "role": Str(max_len=300), "date": Date(), "url": Url(),
                                        "link_label": _LABEL},
                                       required=("text", "author")), min_items=1, max_items=50)},
                  required=("items",)),
    "teasers": Obj({"type": Str(), "heading": Str(max_len=200), "intro": Markdown(max_len=5000),
                    "link_label": _LABEL,
                    "items": ListOf(Obj({"title": Str(max_len=300), "image": Image,
                                         "images": ListOf(Image, max_items=6), "excerpt": Markdown(max_len=5000),
                                         "url": Url(), "link_label": _LABEL},
                                        required=("title", "excerpt", "url")), min_items=1, max_items=50)},
                   required=("items",)),
    "section": Obj({"type": Str(), "heading": Str(max_len=300), "title": Str(max_len=300), "image": Image,
                    "body": Markdown(), "link": Link},
                   required=("body",)),
    "buttons": Obj({"type": Str(), "items": ListOf(Obj({"label": Str(max_len=100), "url": Url(),
                                                        "style": OneOf("primary", "secondary")},
                                                       required=("label", "url")), min_items=1, max_items=4)},
                   required=("items",)),
}


def _view_in_browser(chk: Checker, value: Any, line: int | None, path: str) -> Any:
    """`true`/`false`, or `{label: ...}` to word the line yourself (the link is always the web version)."""
    if isinstance(value, bool):
        return {"show": value, "label": None}
    if not isinstance(value, dict):
        chk.add(line, path, f"must be true, false or {{label: ...}}, got {kind_of(value)}")
        return None
    checked = Obj({"label": Str(max_len=300)})(chk, value, line, path)
    return {"show": True, "label": checked["label"]} if checked else None


_LINKS = Obj({"view_in_browser": _view_in_browser, "website": Link, "donate": Link, "forward": Link})
_FOOTER = Obj({"text": Markdown(max_len=5000), "follow_label": Str(max_len=200),
               "unsubscribe_text": Str(max_len=300)})
_TOP: dict[str, Spec] = {
    "subject": Str(max_len=200), "preheader": Str(max_len=300), "title": Str(max_len=300),
    "date": Date(), "language": language_spec, "links": _LINKS, "blocks": None,  # type: ignore[dict-item]
    "footer": _FOOTER,
}


@dataclass(frozen=True)
class Issue:
    """A validated issue. `blocks` are plain dicts, each with a `type`, ready for templates."""

    path: Path
    slug: str
    subject: str
    preheader: str | None
    title: str
    date: dt.date
    language: str | None
    links: dict[str, Any]
    blocks: list[dict[str, Any]]
    footer: dict[str, Any]
    #: None for an issue; for an edition (`issues/<id>.<lang>.yaml`), its language tag. An
    #: edition has its issue's slug: one ledger row per reader per issue, whatever the edition.
    edition: str | None = None


def _blocks(chk: Checker, value: Any, line: int | None, path: str) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        chk.add(line, path, "must be a list of blocks")
        return []
    if not value:
        chk.add(line, path, "needs at least one block")
    out = []
    for i, block in enumerate(value):
        bpath, bline = f"{path}[{i}]", line_of(value, i)
        if not isinstance(block, dict):
            chk.add(bline, bpath, "must be a mapping with a 'type'")
            continue
        kind = block.get("type")
        if kind is None:
            chk.add(bline, f"{bpath}.type", f"missing (one of: {', '.join(BLOCKS)})")
            continue
        if not isinstance(kind, str) or kind not in BLOCKS:  # a list or mapping here is unhashable
            from difflib import get_close_matches  # a mistake's near miss; not on every build

            hint = get_close_matches(str(kind), list(BLOCKS), n=1)
            msg = f"unknown block type '{kind}'"
            msg += f"; did you mean '{hint[0]}'?" if hint else f"; expected one of: {', '.join(BLOCKS)}"
            chk.add(line_of(block, "type"), f"{bpath}.type", msg)
            continue
        checked = BLOCKS[kind](chk, block, bline, bpath)
        if checked is not None:
            out.append(checked)
    return out


_TOP["blocks"] = _blocks
_ISSUE = Obj(_TOP, required=("subject", "date", "blocks"))


def edition_of(path: Path) -> tuple[Path, str] | None:
    """(the issue's own file, the language) if `path` names an edition, `issues/<id>.<lang>.yaml`:
    the last dotted part of its name is a language tag (`fr`, `pt-BR`). Else None."""
    stem, dot, last = path.stem.rpartition(".")
    if not dot or not stem:
        return None
    tag = normalise(last)
    if tag is None:
        return None
    return path.with_name(stem + path.suffix), tag


def editions_of(path: Path) -> list[Path]:
    """The edition files next to an issue file, in name order: `<id>.<lang>.yaml` (or .yml)."""
    folder = path.parent
    if not folder.is_dir():
        return []
    out = []
    for candidate in sorted(folder.glob(f"{_glob_escape(path.stem)}.*")):
        if candidate.suffix not in (".yaml", ".yml") or not candidate.is_file():
            continue
        found = edition_of(candidate)
        if found and found[0].stem == path.stem:
            out.append(candidate)
    return out


def _glob_escape(text: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", text)


def load_issue(path: Path, *, display: str | None = None) -> Issue:
    """Read and validate an issue file (or an edition of one); raise InputError listing every problem."""
    name = display or str(path)
    slug = path.stem
    edition = edition_of(path)
    data, problems = load_yaml_lenient(path, display=name)
    chk = Checker(name)
    chk.problems.extend(problems)
    if edition is not None:
        main, tag = edition
        slug = main.stem
        if not main.is_file() and not main.with_suffix(".yml" if main.suffix == ".yaml" else ".yaml").is_file():
            chk.add(1, "", f"an edition ({tag}) of an issue that does not exist: no {main.name} next to it "
                           "(an edition is <id>.<lang>.yaml beside its issue's <id>.yaml)")
    if not SLUG.fullmatch(slug):
        chk.add(None, "", f"file name {path.name!r} cannot be an issue id: use letters, digits, '.', '-', '_'")
    if data is None:
        chk.add(1, "", "file is empty")
        raise InputError(chk.problems)
    v = _ISSUE(chk, data, 1, "")
    language = v["language"] if v else None
    if edition is not None and v:
        if language is None:
            language = edition[1]
        elif language != edition[1]:
            chk.add(line_of(data, "language"), "language",
                    f"{language!r}, but the file name makes this the {edition[1]!r} edition ({path.name}): "
                    f"rename the file or fix the language")
    if chk.problems:
        raise InputError(sorted(chk.problems, key=lambda p: p.line or 0))
    return Issue(
        path=path, slug=slug, subject=v["subject"], preheader=v["preheader"],
        title=v["title"] or v["subject"], date=v["date"], language=language,
        links=_links(v["links"]), blocks=v["blocks"],
        footer=v["footer"] or dict.fromkeys(_FOOTER.fields),
        edition=edition[1] if edition else None,
    )


def _links(value: dict[str, Any] | None) -> dict[str, Any]:
    links = dict(value or dict.fromkeys(_LINKS.fields))
    links["view_in_browser"] = links.get("view_in_browser") or {"show": True, "label": None}
    return links


def problems_of(path: Path) -> list[Problem]:
    """All problems of an issue file, or [] if it is valid (for `check` and tests)."""
    try:
        load_issue(path)
    except InputError as e:
        return e.problems
    return []
