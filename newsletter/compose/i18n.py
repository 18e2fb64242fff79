"""Translations of the theme's fixed strings ("Donate", "Read more", ...), per issue language.

Catalogues are ordinary gettext `.po` files, compiled in memory with Babel when first
needed, so there is no build step and no `.mo` file to forget:

- built in: `newsletter/locale/<lang>/LC_MESSAGES/messages.po` (BUILT_IN below);
- a project's own: `locale/<lang>/LC_MESSAGES/messages.po` next to its newsletter.toml
  (`newsletter translations init <lang>` writes one). It wins over the built-in one, string
  by string, so a project can add a language or reword one string without touching the package.

Any BCP 47 tag is a language (`pt-BR`, `sr-Latn`): its strings come from the catalogues along
the tag (`pt-BR`, then `pt`); if there are none, from the list's default language; a string
no catalogue has stays English (the msgid). `resolve()` says which language that was.

Babel is imported only when a catalogue or an unusual date is needed: `babel.support` and
Babel's CLDR data (a pickle per locale) cost ~30 ms of every English build, for nothing
an English issue uses (see issue 6).
"""

from __future__ import annotations

import datetime as dt
import gettext as _gettext
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from newsletter.compose.schema import Rule
from newsletter.errors import InputError, Problem

LOCALE_DIR = Path(__file__).parents[1] / "locale"
DOMAIN = "messages"
#: The languages whose catalogue ships with the package (English is the source language).
#: The one list of them: config, issues and `init` take any BCP 47 tag, these are complete.
BUILT_IN = ("en", "ar", "be", "de", "es", "fr", "ru")
LANGUAGES = BUILT_IN
#: Languages written right to left (the primary subtag): the theme sets dir="rtl" and mirrors.
RTL = frozenset({"ar", "fa", "he", "ur", "ps", "sd", "ug", "yi", "dv", "ckb"})
#: Languages written in Arabic script, whose comma is "،".
ARABIC_SCRIPT = frozenset({"ar", "fa", "ur", "ps", "sd", "ug", "ckb"})

#: BCP 47 language tags as people write them (RFC 5646's langtag without extlang or
#: private use): language, script, region, variants. `_` is accepted for `-`.
_TAG = re.compile(
    r"(?P<lang>[A-Za-z]{2,3})(?:[-_](?P<script>[A-Za-z]{4}))?(?:[-_](?P<region>[A-Za-z]{2}|\d{3}))?"
    r"(?P<variants>(?:[-_](?:[A-Za-z0-9]{5,8}|\d[A-Za-z0-9]{3}))*)"
)
_PARAM = re.compile(r"%\((\w+)\)[sd]")


# --- language tags ----------------------------------------------------------------------------


def normalise(tag: str) -> str | None:
    """`tag` in its canonical case (`pt-br` -> `pt-BR`, `sr_latn` -> `sr-Latn`), or None if it is
    not a language: malformed, or a primary subtag that names no language CLDR knows."""
    m = _TAG.fullmatch(tag.strip()) if isinstance(tag, str) else None
    if not m:
        return None
    lang = m["lang"].lower()
    if lang not in BUILT_IN and lang not in _known_languages():
        return None
    parts = [lang]
    if m["script"]:
        parts.append(m["script"].title())
    if m["region"]:
        parts.append(m["region"].upper())
    parts += [v.lower() for v in re.split(r"[-_]", m["variants"]) if v]
    return "-".join(parts)


@lru_cache(maxsize=1)
def _known_languages() -> frozenset[str]:
    """ISO 639 codes CLDR names (~670): what makes `xx` a language and `zz` not."""
    from babel import Locale

    return frozenset(k for k in Locale("en").languages if k.isalpha() and k.islower())


def primary(tag: str) -> str:
    """The language subtag: `pt-BR` -> `pt`."""
    return re.split(r"[-_]", tag, maxsplit=1)[0].lower()


def is_rtl(tag: str) -> bool:
    """Whether text in `tag` runs right to left (Arabic, Persian, Hebrew, Urdu, ...)."""
    return primary(tag) in RTL and "-Latn" not in tag and "-Cyrl" not in tag


def direction(tag: str) -> str:
    """The HTML `dir` value for `tag`."""
    return "rtl" if is_rtl(tag) else "ltr"


def language_name(tag: str) -> str:
    """`fr` -> "Français": what a reader looks for in a list of languages is their own language's
    name, in that language (babel's CLDR names; the tag itself when CLDR has none)."""
    from babel import Locale, UnknownLocaleError

    try:
        locale = Locale.parse(tag, sep="-")
        name = locale.get_display_name(locale) or tag
    except (UnknownLocaleError, ValueError):
        return tag
    return name[:1].upper() + name[1:]


def along(tag: str) -> list[str]:
    """The tag and its shorter forms, most specific first: `sr-Latn-RS` -> sr-Latn-RS, sr-Latn, sr."""
    parts = tag.split("-")
    return ["-".join(parts[:n]) for n in range(len(parts), 0, -1)]


class LanguageTag(Rule):
    """A schema field holding a BCP 47 tag, returned normalised (`pt-br` -> `pt-BR`); anything
    else is a problem naming the field. A Rule so the JSON Schema editors complete from says the
    same thing the validator checks (the tag's shape; CLDR decides which primary subtags exist)."""

    def __call__(self, chk: Any, value: Any, line: int | None, path: str) -> str | None:
        if value is None:
            return None
        tag = normalise(value) if isinstance(value, str) else None
        if tag is None:
            from difflib import get_close_matches  # a mistake's near miss; not on every build

            hint = get_close_matches(str(value).lower(), BUILT_IN, n=1, cutoff=0.6)
            chk.add(line, path, f"{value!r} is not a language tag (BCP 47, e.g. en, fr, pt-BR, sr-Latn)"
                    + (f"; did you mean {hint[0]!r}?" if hint else ""))
        return tag

    def shape(self) -> dict[str, Any]:
        return {"type": "string", "pattern": TAG_PATTERN}


#: `_TAG` as a JSON Schema (ECMA) pattern: no named groups, anchored, surrounding blanks allowed.
TAG_PATTERN = (r"^\s*[A-Za-z]{2,3}(?:[-_][A-Za-z]{4})?(?:[-_](?:[A-Za-z]{2}|[0-9]{3}))?"
               r"(?:[-_](?:[A-Za-z0-9]{5,8}|[0-9][A-Za-z0-9]{3}))*\s*$")
#: The `language` fields of newsletter.toml and of issues (use as `language_spec.doc(...)`).
language_spec = LanguageTag()


# --- catalogues ---------------------------------------------------------------------------------


def _po_in(folder: Path | None, tag: str) -> Path | None:
    """`folder/<tag>/LC_MESSAGES/messages.po`, the tag written with `-` or `_` (`pt-BR`, `pt_BR`)."""
    if folder is None:
        return None
    for name in dict.fromkeys((tag, tag.replace("-", "_"))):
        po = folder / name / "LC_MESSAGES" / f"{DOMAIN}.po"
        if po.is_file():
            return po
    return None


def catalogue_files(tag: str, project: Path | None = None) -> list[Path]:
    """The .po files that translate `tag` itself (not its shorter forms), project's first."""
    return [po for po in (_po_in(project, tag), _po_in(LOCALE_DIR, tag)) if po is not None]


def available(project: Path | None = None) -> list[str]:
    """Languages with a catalogue (built in or the project's), English first."""
    found = {p.name.replace("_", "-") for folder in (LOCALE_DIR, project) if folder and folder.is_dir()
             for p in folder.iterdir() if (p / "LC_MESSAGES" / f"{DOMAIN}.po").is_file()}
    return ["en", *sorted(t for t in (normalise(f) for f in found) if t and t != "en")]


@dataclass(frozen=True)
class Resolved:
    """Which language's strings an issue in `tag` gets: `used` (a tag along it, or the default)."""

    tag: str
    used: str
    note: str | None  # said once (a build warning) when `used` is not the tag itself


def resolve(tag: str, default: str = "en", project: Path | None = None) -> Resolved:
    """The first of `tag`'s forms with a catalogue (English needs none), else the list's default."""
    for form in along(tag):
        if form == "en" or catalogue_files(form, project):
            note = None if form == tag else f"no translation for {tag}: the theme's strings are in {form}"
            return Resolved(tag, form, note)
    used = resolve(default, "en", project).used if default != tag else "en"
    return Resolved(tag, used, f"no translation for {tag}: the theme's strings are in {used} "
                                f"(the list's default); `newsletter translations init {tag}` adds one")


def translations(language: str, project: Path | None = None, default: str = "en") -> _gettext.NullTranslations:
    """gettext translations for `language` (any tag; see `resolve`), with every method Jinja2's
    i18n extension calls. A string no catalogue has comes out in English.

    Raises InputError (FILE:LINE) for a project catalogue with a syntax error or wrong placeholders."""
    tag = normalise(language) or "en"
    used = resolve(tag, normalise(default) or "en", project).used
    files = [po for form in along(used) if form != "en" for po in catalogue_files(form, project)]
    return _chain(tuple((str(po), *_stamp(po)) for po in files))


def _stamp(po: Path) -> tuple[int, int]:
    """What changes when a catalogue is edited (the cache below is keyed on it: `preview`)."""
    st = po.stat()
    return st.st_mtime_ns, st.st_size


@lru_cache(maxsize=64)
def _chain(files: tuple[tuple[str, int, int], ...]) -> _gettext.NullTranslations:
    if not files:
        return _gettext.NullTranslations()
    first: _gettext.NullTranslations | None = None
    for path, *_ in files:
        t = _compiled(Path(path))
        if first is None:
            first = t
        else:
            first.add_fallback(t)
    first.add_fallback(_gettext.NullTranslations())  # type: ignore[union-attr]
    return first  # type: ignore[return-value]


def _compiled(po: Path) -> _gettext.NullTranslations:
    from babel.messages.mofile import write_mo  # only non-English issues pay for the .po parser
    from babel.support import Translations

    catalog = read_catalogue(po)
    buf = io.BytesIO()
    write_mo(buf, catalog)
    buf.seek(0)
    return Translations(fp=buf, domain=DOMAIN)


def read_catalogue(po: Path, *, display: str | None = None) -> Any:
    """A .po file as a Babel Catalog, fuzzy entries dropped (as msgfmt does); InputError
    naming FILE:LINE for a syntax error or a translation whose %(name)s placeholders differ."""
    from babel.messages.pofile import PoFileError, read_po

    from newsletter.paths import display as show

    name = display or show(po)
    try:
        with po.open("rb") as f:
            catalog = read_po(f, locale=None, domain=DOMAIN, abort_invalid=True)
    except PoFileError as e:
        # Babel counts lines from 0, and appends " on <that number>" to its message
        message = re.sub(r" on \d+$", "", str(e.args[0]))
        raise InputError([Problem(name, e.lineno + 1, "", f"not a valid .po file: {message}")]) from None
    except (UnicodeDecodeError, ValueError) as e:
        raise InputError([Problem(name, None, "", f"not a valid .po file: {e}")]) from None
    except OSError as e:
        raise InputError([Problem(name, None, "", f"cannot read: {e.strerror or e}")]) from None
    problems = list(placeholder_problems(catalog, po, name))
    if problems:
        raise InputError(problems)
    for message in list(catalog):
        if message.id and message.fuzzy:
            del catalog[message.id]
    return catalog


def placeholder_problems(catalog: Any, po: Path, name: str) -> Iterator[Problem]:
    """Translations whose %(name)s parameters are not exactly the English string's: a missing
    one loses information (the organisation's name), an unknown one breaks the page."""
    lines = po.read_text(encoding="utf-8", errors="replace").splitlines()
    for message in catalog:
        if not message.id:
            continue
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strs = message.string if isinstance(message.string, tuple) else (message.string,)
        want = set(_PARAM.findall(" ".join(ids)))
        plural = isinstance(message.id, tuple)
        for text in strs:
            if not text:
                continue
            got = set(_PARAM.findall(text))
            # a plural form may leave the number out ("one issue", Arabic's dual), never add one
            if (got - want) if plural else (got != want):
                line = _msgstr_line(lines, message.lineno)
                missing = ", ".join(f"%({p})s" for p in sorted(want - got))
                extra = ", ".join(f"%({p})s" for p in sorted(got - want))
                what = "; ".join(x for x in (missing and f"lacks {missing}", extra and f"has unknown {extra}") if x)
                yield Problem(name, line, "msgstr", f"translation of {ids[0]!r} {what}")
                break


def _msgstr_line(lines: list[str], msgid_line: int | None) -> int | None:
    if not msgid_line:
        return None
    for n in range(msgid_line - 1, min(len(lines), msgid_line + 40)):
        if lines[n].lstrip().startswith("msgstr"):
            return n + 1
    return msgid_line


def check_project(project: Path | None) -> None:
    """Read every project catalogue: InputError with every .po problem (syntax, placeholders)."""
    if project is None or not project.is_dir():
        return
    problems: list[Problem] = []
    for po in sorted(project.glob(f"*/LC_MESSAGES/{DOMAIN}.po")):
        try:
            _compiled_cached(str(po), *_stamp(po))
        except InputError as e:
            problems.extend(e.problems)
    if problems:
        raise InputError(problems)


@lru_cache(maxsize=64)
def _compiled_cached(path: str, mtime: int, size: int) -> None:
    read_catalogue(Path(path))


def gettext(language: str, message: str, project: Path | None = None, default: str = "en", **params: str) -> str:
    """One fixed string in `language` (English if untranslated), with %(name)s parameters filled."""
    text = translations(language, project, default).gettext(message)
    return text % params if params else text


# --- the strings to translate -----------------------------------------------------------------------

#: Strings the Python code shows (the rest are in the templates, found by `theme_messages`):
#: the name fallback, the one-click answer, the archive's index and navigation (editor/archive.py),
#: the web version's language switch (compose/render.py).
PYTHON_MESSAGES: tuple[str | tuple[str, str], ...] = (
    "reader", "You have been unsubscribed.", "All issues", "Atom feed", "No issues yet.", "Languages",
    ("%(num)d issue", "%(num)d issues"),
)


def theme_messages(folders: list[Path]) -> dict[str | tuple[str, str], list[str]]:
    """Every translatable string of the templates in `folders` (and of the Python code), with
    where it is used: msgid (or (singular, plural)) -> ["blocks/quotes.mjml.j2:9", ...]."""
    import jinja2

    env = jinja2.Environment(extensions=["jinja2.ext.i18n", "jinja2.ext.do"])
    out: dict[str | tuple[str, str], list[str]] = {}
    for folder in folders:
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*.j2")):
            rel = path.relative_to(folder).as_posix()
            try:
                found = list(env.extract_translations(path.read_text(encoding="utf-8")))
            except (jinja2.TemplateSyntaxError, UnicodeDecodeError, OSError):
                continue  # `build` reports a broken template with its line
            for line, _func, args in found:
                strings = [a for a in (args if isinstance(args, tuple) else (args,)) if isinstance(a, str)]
                if not strings:
                    continue
                key: str | tuple[str, str] = strings[0] if len(strings) == 1 else (strings[0], strings[1])
                out.setdefault(key, []).append(f"{rel}:{line}")
    for m in PYTHON_MESSAGES:
        out.setdefault(m, []).append("newsletter (Python)")
    return out


def missing(tag: str, messages: list[str | tuple[str, str]], project: Path | None = None) -> list[str]:
    """The msgids of `messages` that `tag`'s catalogues (along the tag) leave in English."""
    if primary(tag) == "en":
        return []
    have: set[str] = set()
    for form in along(tag):
        for po in catalogue_files(form, project):
            for m in read_catalogue(po):
                if m.id and (all(m.string) if isinstance(m.string, tuple) else m.string):
                    have.add(m.id[0] if isinstance(m.id, tuple) else m.id)
    return [k if isinstance(k, str) else k[0] for k in messages if (k if isinstance(k, str) else k[0]) not in have]


# --- dates ------------------------------------------------------------------------------------------

#: Date patterns per language (CLDR skeletons differ: en_US writes "November 28, 2011";
#: the seeds, like most international English, write "28 November 2011").
_DATE_PATTERNS = {"en": "d MMMM y", "fr": "d MMMM y"}

#: CLDR's wide month names (Babel's `format_date(d, "MMMM", locale=...)`), for the pattern
#: "d MMMM y" without loading Babel's locale data. tests/test_build.py checks them
#: against Babel for every month, so they cannot drift from what Babel would write.
MONTHS = {
    "en": ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December"),
    "fr": ("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août",
           "septembre", "octobre", "novembre", "décembre"),
}


def format_date(value: dt.date | None, language: str = "en") -> str:
    """A date as readers of `language` write it, e.g. 28 November 2011 / 28 novembre 2011 /
    28 ноября 2011 г. (CLDR's long format, through Babel, for languages other than en and fr)."""
    if not value:
        return ""
    if _DATE_PATTERNS.get(language) == "d MMMM y" and language in MONTHS:
        return f"{value.day} {MONTHS[language][value.month - 1]} {value.year}"
    from babel import Locale, UnknownLocaleError
    from babel.dates import format_date as babel_format_date

    for form in along(normalise(language) or "en"):
        try:
            locale = Locale.parse(form, sep="-")
        except (UnknownLocaleError, ValueError):
            continue
        return babel_format_date(value, format=_DATE_PATTERNS.get(form, "long"), locale=locale)
    return babel_format_date(value, format="long", locale="en")
