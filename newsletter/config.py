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
from newsletter.compose.schema import Bool, Checker, Int, ListOf, Obj, OneOf, Rule, Str, Url
from newsletter.compose.source import Map
from newsletter.deliver.constants import BACKENDS as _BACKENDS
from newsletter.errors import ConfigError, Problem
from newsletter.paths import display

CONFIG_NAME = "newsletter.toml"
BACKENDS = tuple(_BACKENDS)

EMAILISH = r"[^@\s]+@[^@\s]+\.[^@\s]+"
LIST_ID = r"[A-Za-z0-9][A-Za-z0-9.-]*\.[A-Za-z0-9-]+"

_URL = Url(schemes=("https", "http"))
HEX_COLOUR = r"#[0-9A-Fa-f]{6}"
BUTTON_SHAPES = ("rounded", "square", "pill")


def _colour(what: str, default: str) -> Str:
    return Str(pattern=HEX_COLOUR, hint="a colour as #rrggbb").doc(f"{what} (default {default}).", default)


_THEME = Obj({
    "logo": _URL.doc("A logo image for the masthead instead of the sender's name in letters (https://; "
                     "about 3:1, shown 180 px wide).", "https://example.org/img/logo.png"),
    "logo_alt": Str(max_len=200).doc("The logo's alt text (default: the sender's name).", "FIDH"),
    "primary": _colour("The masthead, buttons and heading bars", "#b3001b"),
    "accent": _colour("Links, kickers and bullets", "#b3001b"),
    "text": _colour("Body text", "#1f2328"),
    "font": Str(max_len=300, pattern=r"[A-Za-z0-9 ,'\"-]+", hint="a CSS font stack such as Georgia, serif").doc(
        "The font stack (default Helvetica, Arial, sans-serif).", "Georgia, 'Times New Roman', serif"),
    "button_shape": OneOf(*BUTTON_SHAPES).doc("Buttons' corners: rounded (4 px), square or pill.", "rounded"),
}).doc("The look of the default theme without copying templates: logo, colours, font, buttons.",
       {"primary": "#b3001b", "button_shape": "rounded"})

class _Elsewhere(Rule):
    """A table whose keys newsletter/lists.py checks: it needs the whole file (inheritance, ids)."""

    def __call__(self, chk: Checker, value: Any, line: int | None, path: str) -> Any:
        return value

    def shape(self) -> dict[str, Any]:
        return {"type": "object"}


_SCHEMA = Obj(
    {
        "sender": Obj({"name": Str(max_len=200).doc("The From name readers see.", "FIDH"),
                       "address": Str(pattern=EMAILISH, hint="an email address").doc(
                           "The From address, on a domain you can send from (SPF, DKIM).", "news@example.org"),
                       "reply_to": Str(pattern=EMAILISH, hint="an email address").doc(
                           "Where replies go.", "contact@example.org")},
                      required=("name", "address")).doc("Who the email is from.",
                                                        {"name": "FIDH", "address": "news@example.org"}),
        "list": Obj({"name": Str(max_len=200).doc("The list's name (List-Id header, archive).", "FIDH news"),
                     "id": Str(pattern=LIST_ID, hint="a domain-like id, e.g. news.example.org").doc(
                         "A domain-like id for List-Id; keep it stable forever.", "news.example.org"),
                     "unsubscribe_mailto": Str(pattern=EMAILISH, hint="an email address").doc(
                         "Also offer unsubscribing by email in List-Unsubscribe.", "unsubscribe@example.org")},
                    required=("name", "id")).doc("The mailing list.", {"name": "FIDH news", "id": "news.example.org"}),
        "organisation": Obj({"name": Str(max_len=300).doc("Who sends it, printed in every footer.", "FIDH"),
                             "postal_address": Str(max_len=500, single_line=False).doc(
                                 "The postal address the law requires in every email.", "17 Passage de la Main d'Or, "
                                 "75011 Paris, France"),
                             "website": _URL.doc("Linked in the footer.", "https://example.org/"),
                             "phone": Str(max_len=200).doc("Printed under the address.", "+33 1 43 55 25 18"),
                             "social": ListOf(Obj({"name": Str(max_len=50).doc("The network's name.", "Mastodon"),
                                                   "url": _URL.doc("Your page there.", "https://example.org/@you")},
                                                  required=("name", "url")), max_items=20).doc(
                                 "\"Follow us\" links in the footer.", [{"name": "Mastodon",
                                                                        "url": "https://example.org/@you"}])},
                            required=("name", "postal_address")).doc(
            "The organisation behind the newsletter.", {"name": "FIDH", "postal_address": "17 Passage, Paris"}),
        "site": Obj({"base_url": _URL.doc("Where the archive is published and `serve` answers (https).",
                                          "https://news.example.org")},
                    required=("base_url",)).doc("The web site.", {"base_url": "https://news.example.org"}),
        "default_language": language_spec.doc("The theme's language when an issue names none: a BCP 47 tag.", "en"),
        "templates": Str().doc("Folder of template overrides.", "templates"),
        "subscribers": Str().doc("The subscriber CSV.", "subscribers.csv"),
        "database": Str().doc("The state: a SQLite file, or a postgresql:// URL without its password.",
                              ".newsletter/state.db", "postgresql://newsletter@db.example.org/news"),
        "build_dir": Str().doc("Where builds go.", "build"),
        "outbox_dir": Str().doc("Where the outbox backend writes .eml files.", "outbox"),
        "send": Obj({"backend": OneOf(*BACKENDS).doc("outbox, smtp or sendgrid.", "outbox"),
                     "rate": Int(minimum=0, maximum=1_000_000).doc("Messages per second at most; 0: no cap.", 0),
                     "batch_size": Int(minimum=1, maximum=10_000).doc("Readers handed to the backend at a time.",
                                                                      500)}).doc(
            "How `send` sends.", {"backend": "outbox"}),
        "smtp": Obj({"host": Str().doc("The mail server.", "smtp.example.org"),
                     "port": Int(minimum=1, maximum=65535).doc("587 for starttls, 465 for tls.", 587),
                     "security": OneOf("starttls", "tls", "none").doc("starttls, tls or none.", "starttls"),
                     "username": Str().doc("The password comes from NEWSLETTER_SMTP_PASSWORD.", "newsletter"),
                     "timeout": Int(minimum=1, maximum=600).doc("Seconds to wait for the server.", 30),
                     "connections": Int(minimum=1, maximum=32).doc("Parallel connections.", 1)}).doc(
            "The smtp backend.", {"host": "smtp.example.org", "port": 587}),
        "sendgrid": Obj({"host": _URL.doc("The API address.", "https://api.sendgrid.com"),
                         "timeout": Int(minimum=1, maximum=600).doc("Seconds to wait per request.", 30),
                         "webhook_public_key": Str(single_line=False, max_len=2000).doc(
                             "SendGrid's event webhook verification key.", "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE..."),
                         "sandbox": Bool().doc("true: SendGrid validates but delivers nothing.", False),
                         "sync_suppressions": Bool().doc(
                             "Pull SendGrid's suppression lists before every send (`suppressions sync`).", True)}).doc(
            "The sendgrid backend (the key comes from SENDGRID_API_KEY).", {"timeout": 30}),
        "web": Obj({"max_body_bytes": Int(minimum=1024, maximum=100_000_000).doc("Largest request body.", 1_000_000),
                    "webhook_max_age_seconds": Int(minimum=10, maximum=86_400).doc(
                        "Oldest webhook timestamp accepted.", 600),
                    "header_timeout_seconds": Int(minimum=1, maximum=3600).doc(
                        "A request's headers must all arrive within this, or 408 and close (`serve`).", 10),
                    "body_timeout_seconds": Int(minimum=1, maximum=3600).doc(
                        "A request's body must arrive within this, or 408 and close.", 30),
                    "db_wait_seconds": Int(minimum=1, maximum=60).doc(
                        "How long an unsubscribe waits for a busy SQLite state file before it is spooled.", 5)}).doc(
            "`newsletter serve`.", {"max_body_bytes": 1_000_000}),
        "bounces": Obj({"address": Str(pattern=EMAILISH, hint="an email address").doc(
                            "Envelope sender for bounces: each message gets bounces+<token>@... (VERP), naming "
                            "issue and reader for `newsletter bounces`.", "bounces@example.org"),
                        "soft_limit": Int(minimum=1, maximum=1000).doc(
                            "Soft bounces (4.x.x, mailbox full) before an address is suppressed.", 3),
                        "soft_issues": Int(minimum=1, maximum=1000).doc(
                            "...and across at least this many different issues.", 2)}).doc(
            "Bounce processing (`newsletter bounces`).", {"address": "bounces@example.org"}),
        "theme": _THEME,
        # several lists and the signup form: checked by newsletter/lists.py, which needs the whole file
        "lists": _Elsewhere().doc("Several publications, one [lists.<id>] table each: name, id, unsubscribe_mailto, "
                                  "unsubscribe_text (text in the list's default language, or a table of language = "
                                  "text), base_url (where its archive is published), default_language, subscribers, "
                                  "and sender / organisation / theme tables over the top level's.",
                                  {"news": {"name": "FIDH news", "id": "news.example.org"}}),
        "signup": _Elsewhere().doc("`newsletter serve`'s signup form: pending_days (7), per_client_per_hour (30), "
                                   "per_email_per_hour (1).", {"pending_days": 7}),
    },
    required=("sender", "organisation", "site"),
)


def config_json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of newsletter.toml, from the very specs `load_config` checks with."""
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": "https://newsletter.invalid/schema/config.json",
            "title": "newsletter.toml",
            "description": "A newsletter project's settings; see `newsletter schema config`.",
            **_SCHEMA.json_schema()}


@dataclass(frozen=True)
class Theme:
    """The default theme's brand settings (`[theme]`). One small value so that per-list
    settings (issue 12) can hand each list its own."""

    logo: str | None = None
    logo_alt: str | None = None
    primary: str = "#b3001b"
    accent: str = "#b3001b"
    text: str = "#1f2328"
    font: str = "Helvetica, Arial, sans-serif"
    button_shape: str = "rounded"

    @property
    def button_radius(self) -> str:
        return {"square": "0", "pill": "999px"}.get(self.button_shape, "4px")

    @property
    def primary_dark(self) -> str:
        """The masthead's background in dark mode: the primary colour, darker."""
        return mix(self.primary, "#000000", 0.32)

    @property
    def accent_dark(self) -> str:
        """Links in dark mode: the accent colour lightened until it reads on #1c1c1e."""
        return readable_on(self.accent, "#1c1c1e")


def _channel(c: str) -> float:
    v = int(c, 16) / 255
    return v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4


def luminance(colour: str) -> float:
    """WCAG relative luminance of #rrggbb."""
    r, g, b = (_channel(colour[i:i + 2]) for i in (1, 3, 5))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: str, b: str) -> float:
    """WCAG contrast ratio of two #rrggbb colours (1 to 21)."""
    la, lb = sorted((luminance(a), luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def mix(a: str, b: str, share_of_b: float) -> str:
    """`a` moved `share_of_b` of the way towards `b`."""
    parts = [round(int(a[i:i + 2], 16) * (1 - share_of_b) + int(b[i:i + 2], 16) * share_of_b) for i in (1, 3, 5)]
    return "#" + "".join(f"{p:02x}" for p in parts)


def readable_on(colour: str, background: str, ratio: float = 4.5) -> str:
    """`colour` mixed with white (or black) in small steps until it reaches `ratio` on `background`."""
    towards = "#ffffff" if luminance(background) < 0.5 else "#000000"
    for step in range(21):
        candidate = mix(colour, towards, step / 20)
        if contrast(candidate, background) >= ratio:
            return candidate
    return towards


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
    theme: Theme = field(default_factory=Theme)
    bounces: dict[str, Any] = field(default_factory=dict)  # [bounces]: address, soft_limit, soft_issues
    batch_size_set: bool = True  # False: [send] batch_size not given, so a backend may prefer its own
    database_url: str = ""  # `database` as a postgresql:// URL (then `database` is unused); see newsletter.store
    # several lists (newsletter/lists.py): this Config is the project's first list until
    # for_list()/for_issue() picks another; the list-level fields above are that list's
    list_key: str = ""
    lists: tuple[Any, ...] = ()  # lists.ListSettings, in file order
    subscribers_set: bool = True  # False: no CSV source named (the store holds the list)
    # the list's own unsubscribe line: the text for its default language (None: the theme's
    # translated line), and every language's, tag -> text (`[lists.<id>] unsubscribe_text`)
    unsubscribe_text: str | None = None
    unsubscribe_texts: dict[str, str] = field(default_factory=dict)
    list_base_url: str = ""  # `[lists.<id>] base_url`: where this list's archive is published ("": [site]'s)
    list_theme: dict[str, Any] = field(default_factory=dict)  # the list's [lists.<id>.theme] over [theme]
    signup: dict[str, Any] = field(default_factory=dict)
    base: Any = None  # the project-level Config every for_list() starts from

    def for_list(self, key: str) -> Config:
        """This project as list `key` sends it: that list's name, List-Id, sender, organisation."""
        from newsletter.lists import config_for_list

        return config_for_list(self, key)

    def for_issue(self, issue: Any) -> Config:
        """The Config of the list an issue names (`list:`); raises InputError naming FILE:LINE."""
        from newsletter.lists import config_for_issue

        return config_for_issue(self, issue)

    @property
    def archive_url(self) -> str:
        """Where this list's archive (`newsletter archive`) is published, without the final slash:
        its own `base_url`, else [site] base_url (which is also where `serve` answers)."""
        return self.list_base_url or self.base_url

    def web_url(self, slug: str, edition: str | None = None) -> str:
        """Where the view-in-browser version of an issue (or of its edition in `edition`) is published:
        `issues/<slug>/` in the list's archive."""
        base = self.archive_url
        return f"{base}/issues/{slug}/{edition}/" if edition else f"{base}/issues/{slug}/"

    def unsubscribe_text_for(self, language: str) -> str | None:
        """The list's own unsubscribe line for an edition in `language`; None: the theme's translated line."""
        from newsletter.lists import text_for

        return text_for(self.unsubscribe_texts, language)

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
    from newsletter.lists import check_lists

    lined = _with_lines(data, text)
    v = _SCHEMA(chk, lined, 1, "")
    lists = check_lists(chk, lined, v, root=path.parent)
    database_url = _database_url(chk, v, text)
    if chk.problems:
        raise ConfigError(sorted(chk.problems, key=lambda p: p.line or 0))
    root = path.parent

    def p(value: str | None, default: str) -> Path:
        return (root / (value or default)).resolve()

    org, send = v["organisation"], v["send"] or {}
    first = lists.items[0]
    return Config(
        path=path, root=root,
        sender_name=v["sender"]["name"], sender_address=v["sender"]["address"],
        reply_to=v["sender"]["reply_to"],
        list_name=first.name, list_id=first.list_id,
        unsubscribe_mailto=first.unsubscribe_mailto,
        org_name=org["name"], org_postal_address=org["postal_address"].strip(),
        org_website=org["website"], org_phone=org["phone"],
        org_social=tuple((s["name"], s["url"]) for s in (org["social"] or []) if s),
        list_key=first.key, lists=lists.items, subscribers_set=v["subscribers"] is not None,
        signup=lists.signup,
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
        theme=Theme(**{k: x.lower() if k in ("primary", "accent", "text") else x
                       for k, x in (v["theme"] or {}).items() if x is not None}),
        bounces={k: x for k, x in (v["bounces"] or {}).items() if x is not None},
    ).for_list(first.key)



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
