"""newsletter.toml: who sends, to which list, from which organisation, and where things live.

Secrets never live here: the signing key, the SMTP password and the SendGrid key come
from environment variables only (see `newsletter.audience.secrets`).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from newsletter.compose.i18n import LANGUAGES, language_spec  # noqa: F401  (LANGUAGES: re-exported)
from newsletter.compose.schema import Bool, Checker, Int, ListOf, Obj, OneOf, Str, Url
from newsletter.compose.source import Map
from newsletter.errors import ConfigError, Problem
from newsletter.paths import display

CONFIG_NAME = "newsletter.toml"
BACKENDS = ("outbox", "smtp", "sendgrid")

EMAILISH = r"[^@\s]+@[^@\s]+\.[^@\s]+"
LIST_ID = r"[A-Za-z0-9][A-Za-z0-9.-]*\.[A-Za-z0-9-]+"

_SCHEMA = Obj(
    {
        "sender": Obj({"name": Str(max_len=200), "address": Str(pattern=EMAILISH, hint="an email address"),
                       "reply_to": Str(pattern=EMAILISH, hint="an email address")},
                      required=("name", "address")),
        "list": Obj({"name": Str(max_len=200),
                     "id": Str(pattern=LIST_ID, hint="a domain-like id, e.g. news.example.org"),
                     "unsubscribe_mailto": Str(pattern=EMAILISH, hint="an email address")},
                    required=("name", "id")),
        "organisation": Obj({"name": Str(max_len=300), "postal_address": Str(max_len=500, single_line=False),
                             "website": Url(schemes=("https", "http")), "phone": Str(max_len=200),
                             "social": ListOf(Obj({"name": Str(max_len=50), "url": Url(schemes=("https", "http"))},
                                                  required=("name", "url")), max_items=20)},
                            required=("name", "postal_address")),
        "site": Obj({"base_url": Url(schemes=("https", "http"))}, required=("base_url",)),
        "default_language": language_spec,
        "templates": Str(),
        "subscribers": Str(),
        "database": Str(),
        "build_dir": Str(),
        "outbox_dir": Str(),
        "send": Obj({"backend": OneOf(*BACKENDS), "rate": Int(minimum=0, maximum=1_000_000),
                     "batch_size": Int(minimum=1, maximum=10_000)}),
        "smtp": Obj({"host": Str(), "port": Int(minimum=1, maximum=65535),
                     "security": OneOf("starttls", "tls", "none"), "username": Str(),
                     "timeout": Int(minimum=1, maximum=600), "connections": Int(minimum=1, maximum=32)}),
        "sendgrid": Obj({"host": Url(schemes=("https", "http")), "timeout": Int(minimum=1, maximum=600),
                         "webhook_public_key": Str(single_line=False, max_len=2000),
                         "sandbox": Bool()}),
        "web": Obj({"max_body_bytes": Int(minimum=1024, maximum=100_000_000),
                    "webhook_max_age_seconds": Int(minimum=10, maximum=86_400)}),
    },
    required=("sender", "list", "organisation", "site"),
)


@dataclass(frozen=True)
class Config:
    """A validated newsletter.toml; paths are absolute, resolved against its folder."""

    path: Path
    root: Path
    sender_name: str
    sender_address: str
    reply_to: str | None
    list_name: str
    list_id: str
    unsubscribe_mailto: str | None
    org_name: str
    org_postal_address: str
    org_website: str | None
    org_phone: str | None
    org_social: tuple[tuple[str, str], ...]
    base_url: str
    default_language: str
    templates_dir: Path
    subscribers: Path
    database: Path
    build_dir: Path
    outbox_dir: Path
    backend: str
    rate: int
    batch_size: int
    smtp: dict[str, Any] = field(default_factory=dict)
    sendgrid: dict[str, Any] = field(default_factory=dict)
    web: dict[str, Any] = field(default_factory=dict)
    batch_size_set: bool = True  # False: [send] batch_size not given, so a backend may prefer its own
    database_url: str = ""  # `database` as a postgresql:// URL (then `database` is unused); see newsletter.store

    def web_url(self, slug: str, edition: str | None = None) -> str:
        """Where the view-in-browser version of an issue (or of its edition in `edition`) is published."""
        return f"{self.base_url}/issues/{slug}/{edition}/" if edition else f"{self.base_url}/issues/{slug}/"

    def unsubscribe_url(self, token: str) -> str:
        return f"{self.base_url}/unsubscribe/{token}"

    @property
    def locale_dir(self) -> Path:
        """The project's own catalogues, `locale/<lang>/LC_MESSAGES/messages.po`: they win over the built-in ones."""
        return self.root / "locale"

    def language_of(self, issue: Any) -> str:
        """The language an issue is written in: its own `language`, else the project's default."""
        return issue.language or self.default_language


def find_config(start: Path | None = None) -> Path:
    """The newsletter.toml in `start` or its nearest parent."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / CONFIG_NAME
        if candidate.is_file():
            return candidate
    raise ConfigError([Problem(CONFIG_NAME, None, "",
                               f"not found in {here} or any parent folder (run `newsletter init`?)")])


def load_config(path: Path | None = None) -> Config:
    """Read and validate newsletter.toml; raise ConfigError listing every problem."""
    path = (path or find_config()).resolve()
    name = display(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError([Problem(name, None, "", "file not found")]) from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError([Problem(name, None, "", f"cannot read: {e}")]) from None
    try:
        data = tomllib.loads(text)
    except RecursionError:  # tomllib recurses into nested arrays and inline tables
        raise ConfigError([Problem(name, None, "", "malformed TOML: nested too deeply")]) from None
    except tomllib.TOMLDecodeError as e:
        m = re.search(r"\(at line (\d+)", str(e))
        msg = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(e))
        raise ConfigError([Problem(name, int(m.group(1)) if m else None, "", f"malformed TOML: {msg}")]) from None
    chk = Checker(name)
    v = _SCHEMA(chk, _with_lines(data, text), 1, "")
    database_url = _database_url(chk, v, text)
    if chk.problems:
        raise ConfigError(sorted(chk.problems, key=lambda p: p.line or 0))
    root = path.parent

    def p(value: str | None, default: str) -> Path:
        return (root / (value or default)).resolve()

    org, send = v["organisation"], v["send"] or {}
    return Config(
        path=path, root=root,
        sender_name=v["sender"]["name"], sender_address=v["sender"]["address"],
        reply_to=v["sender"]["reply_to"],
        list_name=v["list"]["name"], list_id=v["list"]["id"],
        unsubscribe_mailto=v["list"]["unsubscribe_mailto"],
        org_name=org["name"], org_postal_address=org["postal_address"].strip(),
        org_website=org["website"], org_phone=org["phone"],
        org_social=tuple((s["name"], s["url"]) for s in (org["social"] or []) if s),
        base_url=v["site"]["base_url"].rstrip("/"),
        default_language=v["default_language"] or "en",
        templates_dir=p(v["templates"], "templates"),
        subscribers=p(v["subscribers"], "subscribers.csv"),
        database=p(None if database_url else v["database"], ".newsletter/state.db"),
        database_url=database_url,
        build_dir=p(v["build_dir"], "build"),
        outbox_dir=p(v["outbox_dir"], "outbox"),
        backend=send.get("backend") or "outbox",
        rate=send.get("rate") or 0,
        batch_size=send.get("batch_size") or 500,
        batch_size_set=send.get("batch_size") is not None,
        smtp={k: x for k, x in (v["smtp"] or {}).items() if x is not None},
        sendgrid={k: x for k, x in (v["sendgrid"] or {}).items() if x is not None},
        web={k: x for k, x in (v["web"] or {}).items() if x is not None},
    )



def _database_url(chk: Checker, v: Any, text: str) -> str:
    """`database` when it is a URL: PostgreSQL only, and never with a password in it (a committed
    file is no place for one: use NEWSLETTER_DATABASE, PGPASSWORD or ~/.pgpass)."""
    value = ((v.get("database") if isinstance(v, dict) else None) or "").strip()
    if "://" not in value:
        return ""
    from urllib.parse import urlsplit

    line = _key_lines(text).get("database")
    scheme = value.split("://", 1)[0].lower()
    if scheme not in ("postgresql", "postgres"):
        chk.add(line, "database", f"{scheme}:// is not supported: a path (SQLite) or a postgresql:// URL")
        return ""
    try:
        password = urlsplit(value).password
    except ValueError:
        chk.add(line, "database", "not a valid URL")
        return ""
    if password or "password=" in value.lower():
        chk.add(line, "database", "holds a password: put the URL in NEWSLETTER_DATABASE, or the password "
                                  "in PGPASSWORD or ~/.pgpass, not in this file")
        return ""
    return value


def _with_lines(data: Any, text: str, prefix: str = "") -> Any:
    """Wrap tomllib's output in Map so errors can name lines (found by scanning the text)."""
    lines = _key_lines(text)

    def wrap(value: Any, path: str) -> Any:
        if isinstance(value, dict):
            m = Map(value)
            m.line = lines.get(path, 1)
            m.lines = {k: lines.get(f"{path}.{k}" if path else k, m.line) for k in value}
            for k in value:
                m[k] = wrap(value[k], f"{path}.{k}" if path else k)
            return m
        if isinstance(value, list):
            return [wrap(x, path) for x in value]
        return value

    return wrap(data, prefix)


def _key_lines(text: str) -> dict[str, int]:
    """Map dotted key paths to the line that defines them (tables and plain keys)."""
    out: dict[str, int] = {}
    table = ""
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^\[\[?\s*([^\]]+?)\s*\]\]?", line)
        if m:
            table = ".".join(part.strip().strip('"') for part in m.group(1).split("."))
            out.setdefault(table, n)
            continue
        m = re.match(r'^("?[A-Za-z0-9_.-]+"?)\s*=', line)
        if m:
            key = m.group(1).strip('"')
            out.setdefault(f"{table}.{key}" if table else key, n)
    return out
