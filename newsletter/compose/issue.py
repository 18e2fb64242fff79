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
from newsletter.compose.schema import (
    Checker,
    Date,
    Int,
    ListOf,
    Markdown,
    Obj,
    OneOf,
    Rule,
    Spec,
    Str,
    Url,
    kind_of,
)
from newsletter.compose.source import line_of, load_yaml_lenient
from newsletter.errors import InputError, Problem

SLUG = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")

#: A BCP 47 language tag for text in another language than the issue's (`lang` in the HTML).
LANG = Str(max_len=35, pattern=r"[A-Za-z]{2,3}(?:-[A-Za-z0-9]{1,8})*", hint="a language tag such as fr or pt-BR").doc(
    "The language of this part when it differs from the issue's, as a BCP 47 tag: it becomes the `lang` "
    "attribute in the HTML, so screen readers pronounce it right.", "fr", "pt-BR")
_SRC = "https://example.org/img/2011-11-28/ales-bialiatski.jpg"
Image = Obj(
    {"src": Url(schemes=("https", "http")).doc("The image's absolute https:// address.", _SRC),
     "alt": Str(max_len=300).doc("What the image shows, for readers with images off and screen readers "
                                 "(not a file name).", "Ales Bialiatski speaking at a press conference"),
     "width": Int(minimum=1, maximum=1200).doc("Width in pixels (at most the 552 px column).", 552),
     "height": Int(minimum=1, maximum=3000).doc("Height in pixels: keeps its space while images load or "
                                                "are blocked.", 310),
     "caption": Str(max_len=300).doc("A caption shown under the image.", "Paris, 25 November 2011"),
     "lang": LANG},
    required=("src", "alt"),
).doc("An image: `src` and `alt` are required; give `width` and `height` so its space is kept.",
      {"src": _SRC, "alt": "Ales Bialiatski", "width": 552, "height": 310})
_URL = "https://example.org/news/2013-12-10-honorary-citizen-of-paris/"
#: A link the editor names; `label` overrides the theme's (translated) default text.
Link = Obj({"url": Url().doc("Where the link goes: https://, http:// or mailto:.", _URL),
            "label": Str(max_len=200).doc("The link's text, instead of the theme's default.", "Read the statement"),
            "lang": LANG},
           required=("url",)).doc("A link: `url`, and optionally its `label`.", {"url": _URL, "label": "Read more"})
_LABEL = Str(max_len=100)
_TYPE = Str()
_HEADING = Str(max_len=200).doc("The block's heading (a level-2 heading).", "Interview videos")
_INTRO = Markdown(max_len=5000).doc("Markdown text under the heading.", "Watch what they said in Paris.")
_ITEM_LINK_LABEL = _LABEL.doc("This item's link text, instead of the block's `link_label`.", "Read the statement")
_BLOCK_LINK_LABEL = _LABEL.doc("Text of every item's link in this block, instead of the theme's "
                               "\"Read more\" (each link still names its item for screen readers).", "Read More")
_BODY = Markdown().doc("Markdown: paragraphs, **bold**, [links](https://example.org/), lists, tables. "
                       "`{{ name }}` is filled in per reader.", "Dear {{ name }},\n\nThank you for your support.")

BLOCKS: dict[str, Obj] = {
    "headline": Obj({"type": _TYPE, "kicker": Str(max_len=200).doc("A short line above the title.", "Article 1"),
                     "title": Str(max_len=300).doc("The lead article's title.", "Outrage and indignation"),
                     "date": Date().doc("The article's date, YYYY-MM-DD.", "2011-11-24"),
                     "image": Image, "body": _BODY, "link": Link, "lang": LANG},
                    required=("title", "body")),
    "videos": Obj({"type": _TYPE, "heading": _HEADING, "intro": _INTRO,
                   "items": ListOf(Obj({"thumbnail": Image.doc("The video's still (16:9 works best).", {
                                            "src": "https://example.org/img/video.jpg", "alt": "Artak Kirakosyan",
                                            "width": 160, "height": 90}),
                                        "caption": Str(max_len=300).doc("Says who or what the video shows.",
                                                                        "Artak Kirakosyan, FIDH"),
                                        "url": Url().doc("The video's page.", "https://example.org/videos/1"),
                                        "lang": LANG},
                                       required=("thumbnail", "caption", "url")), min_items=1, max_items=12).doc(
                       "The videos, four to a row (two on phones).", [])},
                  required=("items",)),
    "gallery": Obj({"type": _TYPE, "heading": _HEADING, "intro": _INTRO,
                    "items": ListOf(Obj({"label": Str(max_len=300).doc("The gallery's name or a call to look.",
                                                                       "Photos of the event in Paris"),
                                         "url": Url().doc("The gallery's page.", "https://example.org/photos/1/"),
                                         "image": Image.doc("A thumbnail: items with one are shown as a grid.", {
                                             "src": "https://example.org/img/paris.jpg", "alt": "The rally in Paris",
                                             "width": 268, "height": 180}),
                                         "lang": LANG},
                                        required=("label", "url")), min_items=1, max_items=30).doc(
                        "Links to galleries: a grid of thumbnails, or a list without images.", [])},
                   required=("items",)),
    "quotes": Obj({"type": _TYPE, "heading": _HEADING, "link_label": _BLOCK_LINK_LABEL,
                   "items": ListOf(Obj({"text": Markdown(max_len=5000).doc("The quotation (Markdown).",
                                                                           "We call for his release."),
                                        "author": Str(max_len=200).doc("Who said it.", "Jerzy Buzek"),
                                        "role": Str(max_len=300).doc("The author's role.",
                                                                     "President of the European Parliament"),
                                        "date": Date().doc("When it was said, YYYY-MM-DD.", "2011-11-24"),
                                        "url": Url().doc("The source (press release).", "https://example.org/press/"),
                                        "link_label": _ITEM_LINK_LABEL, "lang": LANG},
                                       required=("text", "author")), min_items=1, max_items=50).doc(
                       "The quotations.", [])},
                  required=("items",)),
    "teasers": Obj({"type": _TYPE, "heading": _HEADING, "intro": _INTRO,
                    "link_label": _BLOCK_LINK_LABEL,
                    "items": ListOf(Obj({"title": Str(max_len=300).doc("The article's title.",
                                                                       "Ales Bialiatski becomes an Honorary Citizen"),
                                         "image": Image,
                                         "images": ListOf(Image, max_items=6).doc(
                                             "Up to six smaller images, two to a row.", []),
                                         "excerpt": Markdown(max_len=5000).doc("The first lines (Markdown).",
                                                                               "On December 10, ..."),
                                         "url": Url().doc("The full article.", _URL),
                                         "link_label": _ITEM_LINK_LABEL, "lang": LANG},
                                        required=("title", "excerpt", "url")), min_items=1, max_items=50).doc(
                        "The articles.", [])},
                   required=("items",)),
    "section": Obj({"type": _TYPE, "heading": Str(max_len=300).doc("The section's heading (level 2).", "In depth"),
                    "title": Str(max_len=300).doc("A title under the heading (level 3).", "The trial"),
                    "image": Image, "body": _BODY, "link": Link, "lang": LANG},
                   required=("body",)),
    "buttons": Obj({"type": _TYPE,
                    "items": ListOf(Obj({"label": Str(max_len=100).doc("The button's text.", "Donate"),
                                         "url": Url().doc("Where it goes.", "https://example.org/donate/"),
                                         "style": OneOf("primary", "secondary").doc(
                                             "primary: filled; secondary: outlined.", "primary"),
                                         "lang": LANG},
                                        required=("label", "url")), min_items=1, max_items=4).doc(
                        "One to four buttons, side by side (stacked on phones).", [])},
                   required=("items",)),
}
BLOCK_DOCS = {
    "headline": "The lead article: kicker, title, date, image, body and a link.",
    "videos": "Video thumbnails with a play button, each linking to its video.",
    "gallery": "Links to photo galleries, with or without thumbnails.",
    "quotes": "Quotations with author, role, date and source.",
    "teasers": "Article teasers: title, image, excerpt and a link to the rest.",
    "section": "Free Markdown: heading, title, image, body and a link.",
    "buttons": "Call-to-action buttons.",
}
for _kind, _block in BLOCKS.items():  # every block may carry `lang`, and every item too
    _block.fields["type"] = _TYPE.doc(f"`{_kind}`: {BLOCK_DOCS[_kind]}", _kind)
    _block.fields.setdefault("lang", LANG)


class _ViewInBrowser(Rule):
    """`true`/`false`, or `{label: ...}` to word the line yourself (the link is always the web version)."""

    label = Obj({"label": Str(max_len=300).doc("The line's text; the whole line links to the web version.",
                                               "Trouble reading? Click here.")})

    def __call__(self, chk: Checker, value: Any, line: int | None, path: str) -> Any:
        if isinstance(value, bool):
            return {"show": value, "label": None}
        if not isinstance(value, dict):
            chk.add(line, path, f"must be true, false or {{label: ...}}, got {kind_of(value)}")
            return None
        checked = self.label(chk, value, line, path)
        return {"show": True, "label": checked["label"]} if checked else None

    def shape(self) -> dict[str, Any]:
        return {"oneOf": [{"type": "boolean"}, self.label.json_schema()]}


_LINKS = Obj({
    "view_in_browser": _ViewInBrowser().doc("The line above the masthead linking to the web version: true "
                                            "(default), false, or {label: ...}.", True,
                                            {"label": "Trouble reading? Click here."}),
    "website": Link.doc("Your website, in the masthead.", {"url": "https://example.org/", "label": "About us"}),
    "donate": Link.doc("Where to donate: a masthead link and a button above the footer.",
                       {"url": "https://example.org/donate/"}),
    "forward": Link.doc("A forward-to-a-friend page, in the masthead.", {"url": "https://example.org/forward/"}),
}).doc("The masthead's links; each `label` overrides the theme's text.",
       {"website": {"url": "https://example.org/"}, "donate": {"url": "https://example.org/donate/"}})
_FOOTER = Obj({"text": Markdown(max_len=5000).doc("Markdown under the postal address.", "FIDH - Fédération "
                                                  "Internationale des ligues des Droits de l'Homme"),
               "follow_label": Str(max_len=200).doc("The words above the social links.", "Follow us"),
               "unsubscribe_text": Str(max_len=300).doc("The unsubscribe line's text (it links to the reader's "
                                                        "unsubscribe page).", "Unsubscribe"),
               "lang": LANG.doc("The language of `text`, when it differs from the issue's.", "fr")}).doc(
    "What the footer says besides the organisation's address (from newsletter.toml).", {"follow_label": "Follow us"})


class _Blocks(Rule):
    """The issue's blocks, in reading order; each has a `type` that picks its fields and template."""

    def __call__(self, chk: Checker, value: Any, line: int | None, path: str) -> list[dict[str, Any]]:
        return _blocks(chk, value, line, path)

    def shape(self) -> dict[str, Any]:
        cases = [{"if": {"properties": {"type": {"const": kind}}, "required": ["type"]},
                  "then": block.json_schema()} for kind, block in BLOCKS.items()]
        item = {"type": "object", "required": ["type"],
                "properties": {"type": {"description": "The kind of block.", "enum": list(BLOCKS),
                                        "examples": ["section"]}},
                "allOf": cases}
        return {"type": "array", "minItems": 1, "items": item}


_TOP: dict[str, Spec] = {
    "subject": Str(max_len=200).doc("The email's subject line; `{{ name }}` is filled in per reader.",
                                    "Let’s mobilise to free Ales Bialiatski!"),
    "preheader": Str(max_len=300).doc("The line inboxes show after the subject.",
                                      "Ales Bialiatski sentenced to four and a half years. Act now."),
    "title": Str(max_len=300).doc("The title at the top of the email and of the web page (default: the subject).",
                                  "Let’s mobilise to free Ales Bialiatski !"),
    "date": Date().doc("The issue's date, YYYY-MM-DD.", "2011-11-28"),
    "language": language_spec.doc("The language of the theme's fixed strings and of the content: a BCP 47 "
                                  "tag (built in: en, ar, be, de, es, fr, ru; others fall back along the tag).",
                                  "en", "pt-BR"),
    "links": _LINKS, "blocks": _Blocks().doc("The content, in reading order.", [
        {"type": "headline", "title": "Outrage and indignation", "body": "Ales Bialiatski was sentenced..."},
        {"type": "section", "heading": "In depth", "body": "His trial opened on 2 November 2011."}]),
    "footer": _FOOTER,
    "list": Str(max_len=64).doc("Which list of newsletter.toml this issue is for (a [lists.<id>] key); "
                                "required once the project has several.", "campaigns"),
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
    list_key: str | None = None  # `list:`; None: the project's only list
    list_line: int | None = None


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


def issue_json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of an issue file, from the very specs `load_issue` checks with."""
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": "https://newsletter.invalid/schema/issue.json",
            "title": "newsletter issue",
            "description": "One issue of a newsletter (issues/<id>.yaml); see `newsletter schema issue`.",
            **_ISSUE.json_schema()}


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
        list_key=v["list"], list_line=line_of(data, "list"),
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
