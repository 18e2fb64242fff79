"""Several publications in one project: `[lists.<id>]` tables in newsletter.toml.

A project with today's single `[list]` table is one list (its key is `default`). A project
may instead hold several `[lists.<id>]` tables; each list is a publication with its own name,
List-Id, CSV source, default language, unsubscribe wording, web address (`base_url`: where
its archive and web versions are published), and optionally its own `sender`,
`organisation` and `theme` sub-tables. Whatever a list does not set, it inherits
from the top level (`[sender]`, `[organisation]`, `[theme]`, `subscribers`,
`default_language`), so a second list only states how it differs.

An issue names its list with a top-level `list: <id>`; required once a project has two lists.
`Config.for_issue(issue)` then gives the Config that list sends with: every module that
renders or sends keeps reading `config.list_name`, `config.sender_address`, ... unchanged.

`[signup]` holds the signup form's settings (see newsletter/audience/signup.py).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from newsletter.compose.i18n import LanguageTag
from newsletter.compose.schema import Checker, Int, Obj, Rule, Str, Url, kind_of
from newsletter.compose.source import line_of
from newsletter.errors import InputError, Problem

if TYPE_CHECKING:
    from newsletter.config import Config

SINGLE = "default"  #: the key of the one list of a project with a `[list]` table
KEY = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
EMAILISH = r"[^@\s]+@[^@\s]+\.[^@\s]+"
LIST_ID = r"[A-Za-z0-9][A-Za-z0-9.-]*\.[A-Za-z0-9-]+"


def _table(chk: Checker, value: Any, line: int | None, path: str) -> Any:
    if not isinstance(value, dict):
        chk.add(line, path, "must be a table")
        return None
    return dict(value)


def _theme() -> Any:
    """[theme]'s own rules for a list's theme table, where this version has [theme]."""
    from newsletter import config

    return getattr(config, "_THEME", _table)


def _list_schema(single: bool) -> Obj:
    fields: dict[str, Any] = {
        "name": Str(max_len=200),
        "id": Str(pattern=LIST_ID, hint="a domain-like id, e.g. news.example.org"),
        "unsubscribe_mailto": Str(pattern=EMAILISH, hint="an email address"),
    }
    if not single:
        fields |= {
            "subscribers": Str(),
            "default_language": LanguageTag(),  # any BCP 47 tag, as the top level's
            "unsubscribe_text": UnsubscribeText(),
            "base_url": Url(schemes=("https", "http")),
            "sender": Obj({"name": Str(max_len=200), "address": Str(pattern=EMAILISH, hint="an email address"),
                           "reply_to": Str(pattern=EMAILISH, hint="an email address")}),
            "organisation": Obj({"name": Str(max_len=300), "postal_address": Str(max_len=500, single_line=False),
                                 "website": Url(schemes=("https", "http")), "phone": Str(max_len=200),
                                 "social": _table_list}),
            "theme": _theme(),
        }
    return Obj(fields, required=("name", "id"))


class UnsubscribeText(Rule):
    """A list's own unsubscribe line: text, written in the list's default language (other
    languages keep the theme's translated line), or a table of language tag -> text
    (`{ en = "...", be = "..." }`: a language missing from it keeps the translated line).
    Returned as text, or as a dict keyed by the normalised tag."""

    _TEXT = Str(max_len=300)

    def __call__(self, chk: Checker, value: Any, line: int | None, path: str) -> Any:
        if isinstance(value, str):
            return self._TEXT(chk, value, line, path)
        if not isinstance(value, dict):
            chk.add(line, path, f"must be text, or a table of language = text "
                                f"({{ en = \"...\", be = \"...\" }}), got {kind_of(value)}")
            return None
        if not value:
            chk.add(line, path, "an empty table: name at least one language (en = \"...\"), or leave it out")
            return None
        from newsletter.compose.i18n import language_spec

        out: dict[str, str] = {}
        for key, text in value.items():
            where, at = line_of(value, key), f"{path}.{key}"
            tag = language_spec(chk, key, where, at)
            if tag is None:
                continue
            if tag.lower() in (t.lower() for t in out):
                chk.add(where, at, f"{tag} is already in this table")
                continue
            if not isinstance(text, str):
                chk.add(where, at, f"must be text, got {kind_of(text)}")
                continue
            text = self._TEXT(chk, text, where, at)
            if text is not None:
                out[tag] = text
        return out


def texts_by_language(value: str | dict[str, str] | None, default_language: str) -> dict[str, str]:
    """`unsubscribe_text` as language tag -> text: a plain string is the default language's."""
    if value is None:
        return {}
    return dict(value) if isinstance(value, dict) else {default_language: value}


def text_for(texts: dict[str, str], language: str) -> str | None:
    """The entry of `texts` for an edition in `language`, along its tag (`be-BY` -> `be`); None
    when there is none, and the theme's translated line is used."""
    from newsletter.compose.i18n import along

    lowered = {tag.lower(): text for tag, text in texts.items()}
    return next((lowered[form] for form in along(language.lower()) if form in lowered), None)


def _table_list(chk: Checker, value: Any, line: int | None, path: str) -> Any:
    from newsletter.compose.schema import ListOf

    spec = ListOf(Obj({"name": Str(max_len=50), "url": Url(schemes=("https", "http"))},
                      required=("name", "url")), max_items=20)
    return spec(chk, value, line, path)


_SIGNUP = Obj({
    "pending_days": Int(minimum=1, maximum=365),
    "per_client_per_hour": Int(minimum=1, maximum=1_000_000),
    "per_email_per_hour": Int(minimum=1, maximum=1000),
    "wording_version": Str(max_len=100),
})


@dataclass(frozen=True)
class ListSettings:
    """One `[lists.<id>]` table (or the single `[list]`), as written: None = inherit."""

    key: str
    name: str
    list_id: str
    unsubscribe_mailto: str | None = None
    subscribers: Path | None = None
    default_language: str | None = None
    unsubscribe_text: str | dict[str, str] | None = None  # text (the default language's) or tag -> text
    base_url: str | None = None
    sender: dict[str, Any] = field(default_factory=dict)
    organisation: dict[str, Any] = field(default_factory=dict)
    theme: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Lists:
    items: tuple[ListSettings, ...]
    signup: dict[str, Any]


def check_lists(chk: Checker, data: Any, v: Any, *, root: Path) -> Lists:
    """Validate `[list]` / `[lists.<id>]` and `[signup]`; problems go to `chk`."""
    data = data if isinstance(data, dict) else {}
    items: list[ListSettings] = []
    single, several = data.get("list"), data.get("lists")
    if single is not None and several is not None:
        chk.add(line_of(data, "list"), "list", "a project has either one [list] table or [lists.<id>] tables, "
                                               "not both: move [list] into [lists.<id>]")
    elif several is not None:
        if not isinstance(several, dict) or not several:
            chk.add(line_of(data, "lists"), "lists", "must hold at least one [lists.<id>] table")
        else:
            schema = _list_schema(single=False)
            seen_ids: dict[str, str] = {}
            for key, table in several.items():
                path = f"lists.{key}"
                line = line_of(several, key)
                if not KEY.fullmatch(str(key)):
                    chk.add(line, path, "a list id is lower-case letters, digits, '-' and '_' (at most 64)")
                    continue
                t = schema(chk, table, line, path)
                if t is None or t["name"] is None or t["id"] is None:
                    continue
                if t["id"].lower() in seen_ids:
                    chk.add(line_of(table, "id"), f"{path}.id",
                            f"List-Id {t['id']!r} is already lists.{seen_ids[t['id'].lower()]}'s")
                seen_ids[t["id"].lower()] = key
                items.append(ListSettings(
                    key=key, name=t["name"], list_id=t["id"], unsubscribe_mailto=t["unsubscribe_mailto"],
                    subscribers=(root / t["subscribers"]).resolve() if t["subscribers"] else None,
                    default_language=t["default_language"], unsubscribe_text=t["unsubscribe_text"],
                    base_url=t["base_url"].rstrip("/") if t["base_url"] else None,
                    sender={k: x for k, x in (t["sender"] or {}).items() if x is not None},
                    organisation={k: x for k, x in (t["organisation"] or {}).items() if x is not None},
                    theme={k: x.lower() if k in ("primary", "accent", "text") else x
                           for k, x in (t["theme"] or {}).items() if x is not None}))
    elif single is not None:
        # newsletter.toml's own schema checked [list] and reported its problems already
        t = _list_schema(single=True)(Checker(chk.file), single, line_of(data, "list"), "list")
        if t is not None and t["name"] is not None and t["id"] is not None:
            items.append(ListSettings(key=SINGLE, name=t["name"], list_id=t["id"],
                                      unsubscribe_mailto=t["unsubscribe_mailto"]))
    else:
        chk.add(1, "list", "missing (required): a [list] table, or one [lists.<id>] table per list")
    signup = _SIGNUP(chk, data["signup"], line_of(data, "signup"), "signup") if "signup" in data else None
    if not items:  # problems were reported; a placeholder keeps construction simple
        items.append(ListSettings(key=SINGLE, name="", list_id=""))
    return Lists(tuple(items), {k: x for k, x in (signup or {}).items() if x is not None})


def keys(config: Config) -> list[str]:
    """The project's list ids, in file order."""
    return [s.key for s in config.lists]


def settings(config: Config, key: str) -> ListSettings:
    for s in config.lists:
        if s.key == key:
            return s
    raise KeyError(key)


def config_for_list(config: Config, key: str) -> Config:
    """The project's Config as list `key` sends: that list's fields over the top level's."""
    from newsletter.errors import ConfigError
    from newsletter.paths import display

    base = config.base or config
    try:
        s = settings(base, key)
    except KeyError:
        raise ConfigError([Problem(display(base.path), None, "lists",
                                   f"no list {key!r}; the lists are: {', '.join(keys(base))}")]) from None
    sender, org = s.sender, s.organisation
    language = s.default_language or base.default_language
    texts = texts_by_language(s.unsubscribe_text, language)
    changes: dict[str, Any] = dict(
        base=base, list_key=s.key, list_name=s.name, list_id=s.list_id, unsubscribe_mailto=s.unsubscribe_mailto,
        unsubscribe_texts=texts, list_theme=s.theme, list_base_url=s.base_url or "",
        sender_name=sender.get("name", base.sender_name),
        sender_address=sender.get("address", base.sender_address),
        reply_to=sender.get("reply_to", base.reply_to if "address" not in sender else None),
        default_language=language,
    )
    changes["unsubscribe_text"] = text_for(texts, language)
    if s.subscribers is not None:
        changes |= dict(subscribers=s.subscribers, subscribers_set=True)
    if org:
        changes |= dict(
            org_name=org.get("name", base.org_name),
            org_postal_address=org.get("postal_address", base.org_postal_address).strip(),
            org_website=org.get("website", base.org_website if "name" not in org else None),
            org_phone=org.get("phone", base.org_phone if "name" not in org else None),
            org_social=tuple((x["name"], x["url"]) for x in (org.get("social") or []) if x)
            if "social" in org or "name" in org else base.org_social,
        )
    theme = getattr(base, "theme", None)  # [theme] (the default theme's brand settings), if this build has it
    if s.theme and dataclasses.is_dataclass(theme) and not isinstance(theme, type):
        known = {f.name for f in dataclasses.fields(theme)}
        changes["theme"] = dataclasses.replace(theme, **{k: x for k, x in s.theme.items() if k in known})
    return dataclasses.replace(base, **changes)


def config_for_issue(config: Config, issue: Any) -> Config:
    """The Config of the list `issue` names; InputError (FILE:LINE: list) if it names none
    of a project with several, or an unknown one."""
    from newsletter.paths import display

    base = config.base or config
    wanted = getattr(issue, "list_key", None)
    ids = keys(base)
    name = display(issue.path)
    if wanted is None:
        if len(ids) == 1:
            return config_for_list(base, ids[0])
        raise InputError([Problem(name, 1, "list", f"missing (required: this project has {len(ids)} lists: "
                                                   f"{', '.join(ids)})")])
    if wanted not in ids:
        from difflib import get_close_matches

        hint = get_close_matches(wanted, ids, n=1)
        more = f"; did you mean '{hint[0]}'?" if hint else ""
        raise InputError([Problem(name, getattr(issue, "list_line", None), "list",
                                  f"unknown list '{wanted}'{more} (lists: {', '.join(ids)})")])
    return config_for_list(base, wanted)
