"""`newsletter check`: lint a built issue before it reaches a list.

Building proves an issue is well formed; checking asks whether it is fit to send: will
Gmail clip it, will Outlook show its images at the right size, does every link work in an
inbox, can the reader unsubscribe, is the sender's postal address there, did MRML quietly
drop an MJML tag we mistyped, does the CSS we wrote work in the clients people use.

`lint()` is pure and cheap (no network, nothing written): `send` runs it before every send
and refuses on errors. `check_online()` is the slow part, off by default: it asks every
link and image whether it answers.

Each finding names the file an editor has to change, and its line when it can be found:
the issue YAML for what came from the issue, newsletter.toml for what came from the
config, the template for what the theme wrote.
"""

from __future__ import annotations

import concurrent.futures
import difflib
import functools
import ipaddress
import json
import re
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from newsletter.compose.build import GMAIL_CLIP_BYTES, SAMPLE_RECIPIENT, Built
from newsletter.compose.render import default_theme
from newsletter.compose.source import Map, Seq, load_yaml
from newsletter.deliver.placeholders import PLACEHOLDER, Template

DATA = Path(__file__).parents[1] / "data"
WARN_BYTES = 90 * 1024
SUBJECT_MAX = 80
#: RFC 2606 reserves these for documentation: nothing real lives there.
EXAMPLE_DOMAINS = ("example.com", "example.org", "example.net")
LOCAL_SUFFIXES = (".localhost", ".local", ".internal", ".lan", ".home.arpa")
OK_SCHEMES = ("https", "http", "mailto", "tel", "sms")


@dataclass(frozen=True)
class Finding:
    """One problem: `FILE[:LINE]: error|warning: message [rule]`."""

    file: str
    line: int | None
    severity: str  # "error" or "warning"
    message: str
    rule: str = ""

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        tail = f" [{self.rule}]" if self.rule else ""
        return f"{where}: {self.severity}: {self.message}{tail}"

    @property
    def is_error(self) -> bool:
        return self.severity == "error"


def has_errors(findings: Iterable[Finding]) -> bool:
    """Whether `send` must refuse (unless forced)."""
    return any(f.is_error for f in findings)


def lint(built: Built, *, strict_css: bool = False) -> list[Finding]:
    """Every finding about a built issue, in a stable order. Pure: no network, no writes.

    `strict_css` also reports CSS that only one major client lacks (see `_css`).
    """
    ctx = _Context(built, strict_css=strict_css)
    out: list[Finding] = []
    for rule in (_size, _subject, _preheader, _images, _urls, _unsubscribe, _postal_address, _mjml, _css):
        out.extend(rule(ctx))
    return _dedupe(out)


def _dedupe(findings: list[Finding]) -> list[Finding]:
    seen: set[Finding] = set()
    out = []
    for f in findings:
        if f not in seen:
            seen.add(f)
            out.append(f)
    return out


# --- where things came from -------------------------------------------------------------

def display(path: Path) -> str:
    """A path as the editor would type it: relative to the current folder when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        return str(path)


@dataclass
class _Context:
    built: Built
    issue_file: str = ""
    issue_lines: list[str] = field(default_factory=list)
    issue_data: Any = None
    config_file: str = ""
    config_lines: list[str] = field(default_factory=list)
    templates: list[Path] = field(default_factory=list)
    strict_css: bool = False

    def __post_init__(self) -> None:
        b = self.built
        self.issue_file = display(b.issue.path)
        self.issue_lines = _read_lines(b.issue.path)
        try:
            self.issue_data = load_yaml(b.issue.path)
        except Exception:  # noqa: BLE001 - the issue built a moment ago; lines are a nicety
            self.issue_data = None
        self.config_file = display(b.config.path)
        self.config_lines = _read_lines(b.config.path)
        folders = [b.config.templates_dir] if b.config.templates_dir.is_dir() else []
        folders.append(default_theme())
        self.templates = [p for folder in folders for p in sorted(folder.rglob("*.j2"))]

    @functools.cached_property
    def doc(self) -> Any:
        import lxml.html

        return lxml.html.document_fromstring(self.built.rendered.html)

    @functools.cached_property
    def demo(self) -> bool:
        """A project that sends from a reserved example domain cannot reach a real inbox: it is a demo."""
        return _is_example(self.built.config.sender_address.rpartition("@")[2])

    def key_line(self, *path: str | int) -> int | None:
        """Line of a key in the issue YAML, e.g. key_line("subject")."""
        node = self.issue_data
        line = None
        for key in path:
            if isinstance(node, Map) and key in node:
                line = node.lines.get(str(key), line)
                node = node[key]
            elif isinstance(node, Seq) and isinstance(key, int) and 0 <= key < len(node):
                line = node.lines[key]
                node = node[key]
            else:
                return line
        return line

    def config_line(self, dotted: str) -> int | None:
        """Line of `table.key` in newsletter.toml (the schema keeps tables shallow)."""
        table, _, key = dotted.rpartition(".")
        current = ""
        for n, raw in enumerate(self.config_lines, 1):
            s = raw.strip()
            m = re.match(r"^\[\s*([^\]]+?)\s*\]", s)
            if m:
                current = m.group(1)
                continue
            if current == table and re.match(rf"^{re.escape(key)}\s*=", s):
                return n
        return None

    def locate(self, needle: str) -> tuple[str, int | None]:
        """Where a string in the email came from: the issue, the config, a template, or the email itself."""
        start = next((line for line, value in _scalars(self.issue_data) if needle in value), None)
        if start is not None:
            # the value's key line; a block scalar's text goes on below it
            for n in range(start, len(self.issue_lines) + 1):
                if needle in self.issue_lines[n - 1] and not self.issue_lines[n - 1].lstrip().startswith("#"):
                    return self.issue_file, n
            return self.issue_file, start
        for n, text in enumerate(self.config_lines, 1):
            if needle in text and not text.lstrip().startswith("#"):
                return self.config_file, n
        hit = self.in_templates(re.compile(re.escape(needle)))
        return hit or (self.issue_file, None)

    def in_templates(self, pattern: re.Pattern[str]) -> tuple[str, int] | None:
        """First template line matching `pattern`: the project's overrides first, then the theme."""
        for path in self.templates:
            for n, text in enumerate(_read_lines(path), 1):
                if pattern.search(text):
                    return display(path), n
        return None


def _scalars(node: Any, line: int | None = None) -> Iterator[tuple[int, str]]:
    """(line of its key or item, text) for every string in a YAML tree from `load_yaml`."""
    if isinstance(node, Map):
        for key, value in node.items():
            yield from _scalars(value, node.lines.get(key, line))
    elif isinstance(node, Seq):
        for i, value in enumerate(node):
            yield from _scalars(value, node.lines[i] if i < len(node.lines) else line)
    elif isinstance(node, str) and line is not None:
        yield line, node


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError):
        return []


# --- rules ------------------------------------------------------------------------------

def _size(ctx: _Context) -> Iterator[Finding]:
    size = ctx.built.sample_html_bytes()
    kb = size / 1024
    if size > GMAIL_CLIP_BYTES:
        yield Finding(ctx.issue_file, None, "error",
                      f"email.html is {kb:.1f} KB with a recipient filled in: Gmail clips messages over 102 KB "
                      "and hides the rest, the unsubscribe link included", "size")
    elif size > WARN_BYTES:
        yield Finding(ctx.issue_file, None, "warning",
                      f"email.html is {kb:.1f} KB with a recipient filled in: close to Gmail's 102 KB clipping "
                      "limit", "size")


def _subject(ctx: _Context) -> Iterator[Finding]:
    subject = ctx.built.issue.subject
    line = ctx.key_line("subject")
    # A reader without a name (a real CSV row can have none) gets the emptiest subject.
    if not Template(subject).fill({}).strip():
        yield Finding(ctx.issue_file, line, "error",
                      "subject is empty once per-recipient fields are filled in for a reader without them", "subject")
        return
    filled = Template(subject).fill(SAMPLE_RECIPIENT)
    if len(filled) > SUBJECT_MAX:
        yield Finding(ctx.issue_file, line, "warning",
                      f"subject is {len(filled)} characters with a recipient filled in: inboxes cut it off around "
                      f"{SUBJECT_MAX}", "subject")


def _preheader(ctx: _Context) -> Iterator[Finding]:
    if not ctx.built.issue.preheader:
        yield Finding(ctx.issue_file, None, "warning",
                      "no preheader: inboxes show the first text of the email beside the subject instead",
                      "preheader")


def _images(ctx: _Context) -> Iterator[Finding]:
    for img in ctx.doc.iter("img"):
        src = (img.get("src") or "").strip()
        if _is_tracking_pixel(img):
            continue
        if not (img.get("alt") or "").strip():
            file, line = ctx.locate(src) if src else (ctx.issue_file, None)
            yield Finding(file, line, "error",
                          f"image without alt text: {src or '(no src)'}: readers with images off (and screen "
                          "readers) get nothing", "img-alt")
        if not (img.get("width") or "").strip():
            file, line = ctx.locate(src) if src else (ctx.issue_file, None)
            yield Finding(file, line, "warning",
                          f"image without a width attribute: {src or '(no src)'}: Outlook desktop shows it at its "
                          "full natural size", "img-width")


def _is_tracking_pixel(img: Any) -> bool:
    return img.get("width") == "1" and img.get("height") == "1"


def _links(ctx: _Context) -> list[tuple[str, str]]:
    """(kind, url) for every link and image in the HTML part, in document order, once each."""
    seen: dict[str, str] = {}
    for el in ctx.doc.iter():
        if not isinstance(el.tag, str):
            continue
        for attr, kind in (("href", "link"), ("src", "image"), ("background", "image")):
            url = (el.get(attr) or "").strip()
            if url and url not in seen and el.tag != "link":  # <link>: MRML's web-font stylesheets
                seen[url] = kind
        for url in re.findall(r"url\(\s*['\"]?([^'\")]+)", el.get("style") or ""):
            seen.setdefault(url.strip(), "image")
    return [(kind, url) for url, kind in seen.items()]


def _urls(ctx: _Context) -> Iterator[Finding]:
    """Links and images an inbox cannot use, and placeholders left pointing at example domains.

    Example domains (RFC 2606) are fine in a demo and a mistake in a real newsletter. What
    makes a project a demo is not a flag anyone could set and forget, but a fact: its
    sender address is itself on a reserved example domain, so it cannot deliver a single
    real message (no SPF, no DKIM, no inbox accepts it). Such a project (this repository's
    example, a fresh `newsletter init`) gets one warning naming `sender.address`; once the
    sender is real, every example link left in an issue or the config is an error.
    """
    demo_noted = False
    for kind, url in _links(ctx):
        if PLACEHOLDER.fullmatch(url) or url.startswith("#"):
            continue
        file, line = ctx.locate(url)
        try:
            parts = urlsplit(url)
            host = (parts.hostname or "").lower()
        except ValueError:
            yield Finding(file, line, "error", f"{kind} is not a valid URL: {url}", "url")
            continue
        scheme = parts.scheme.lower()
        if not scheme:
            yield Finding(file, line, "error",
                          f"relative {kind} URL {url}: an email has no page to be relative to; use https://...",
                          "url-relative")
            continue
        if scheme not in OK_SCHEMES:
            yield Finding(file, line, "error", f"{kind} URL with scheme '{scheme}:' does not work in email: {url}",
                          "url")
            continue
        if scheme not in ("http", "https"):
            continue
        if _is_local(host):
            yield Finding(file, line, "error",
                          f"{kind} points to a local address that no reader can reach: {url}", "url-localhost")
            continue
        if scheme == "http":
            yield Finding(file, line, "warning",
                          f"{kind} uses http://, not https://: {url}", "url-http")
        if _is_example(host):
            if ctx.demo:
                if not demo_noted:
                    demo_noted = True
                    yield _demo_note(ctx)
                continue
            yield Finding(file, line, "error",
                          f"{kind} points to {_example_root(host)}, a reserved example domain: {url}",
                          "example-domain")


def _demo_note(ctx: _Context) -> Finding:
    domain = ctx.built.config.sender_address.rpartition("@")[2]
    return Finding(ctx.config_file, ctx.config_line("sender.address"), "warning",
                   f"sender.address is on {domain}, a reserved example domain, so this is a demo project and its "
                   "links to example domains are allowed; use your own domain before a real send",
                   "example-domain")


def _is_example(host: str) -> bool:
    host = host.lower().rstrip(".")
    return any(host == d or host.endswith("." + d) for d in EXAMPLE_DOMAINS)


def _example_root(host: str) -> str:
    return next(d for d in EXAMPLE_DOMAINS if host == d or host.endswith("." + d))


def _is_local(host: str) -> bool:
    host = host.strip("[]").rstrip(".")
    if host == "localhost" or host.endswith(LOCAL_SUFFIXES) or "." not in host and ":" not in host:
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    return ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_unspecified or ip.is_reserved


def _unsubscribe(ctx: _Context) -> Iterator[Finding]:
    r = ctx.built.rendered
    field_ = "unsubscribe_url"
    hrefs = [a.get("href") or "" for a in ctx.doc.iter("a")]
    if not any(field_ in PLACEHOLDER.findall(h) for h in hrefs):
        yield Finding(ctx.issue_file, None, "error",
                      "no unsubscribe link in the HTML part (a link to {{ unsubscribe_url }}): every message must "
                      "let its reader leave the list", "unsubscribe")
    if field_ not in PLACEHOLDER.findall(r.text):
        yield Finding(ctx.issue_file, None, "error",
                      "no unsubscribe link in the text part ({{ unsubscribe_url }})", "unsubscribe")
    headers = _sample_headers(ctx.built)
    if headers is not None:
        if not headers.get("List-Unsubscribe"):
            yield Finding(ctx.issue_file, None, "error",
                          "the built message has no List-Unsubscribe header: inboxes show no unsubscribe button",
                          "unsubscribe")
        if (headers.get("List-Unsubscribe-Post") or "").strip() != "List-Unsubscribe=One-Click":
            yield Finding(ctx.issue_file, None, "error",
                          "the built message has no List-Unsubscribe-Post: List-Unsubscribe=One-Click header "
                          "(RFC 8058): Gmail and Yahoo require one-click unsubscribe from bulk senders",
                          "unsubscribe")
    base = ctx.built.config.base_url
    if urlsplit(base).scheme != "https":
        yield Finding(ctx.config_file, ctx.config_line("site.base_url"), "error",
                      f"site.base_url {base} is not https: the List-Unsubscribe header's one-click link (RFC 8058) "
                      "must be https://", "unsubscribe")


def _sample_headers(built: Built) -> Any:
    """The headers of one message exactly as `send` would build it, for a sample reader.

    Signed with the development key, never the environment's: checking stays pure and
    needs no secret. None if the message module cannot build one (then only the links
    are checked).
    """
    import email
    import email.policy

    try:
        from newsletter.audience.secrets import DEVELOPMENT_KEY, SigningKeys
        from newsletter.deliver.message import make_recipient, prepare_message

        keys = SigningKeys(DEVELOPMENT_KEY.encode(), (), True)
        language = built.issue.language or built.config.default_language
        reader = make_recipient(email=SAMPLE_RECIPIENT["email"], name=SAMPLE_RECIPIENT["name"], language=language,
                                fields={}, slug=built.slug, config=built.config, keys=keys)
        raw = prepare_message(built).to_bytes(reader)
    except (ImportError, TypeError, AttributeError, ValueError):
        return None
    return email.message_from_bytes(raw.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n", policy=email.policy.default)


def _postal_address(ctx: _Context) -> Iterator[Finding]:
    from newsletter.editor.scaffold import PLACEHOLDER_ADDRESS

    address = ctx.built.config.org_postal_address
    if address == PLACEHOLDER_ADDRESS:
        yield Finding(ctx.config_file, ctx.config_line("organisation.postal_address"),
                      "warning" if ctx.demo else "error",
                      "organisation.postal_address is still the placeholder `newsletter init` wrote: readers must "
                      "see your real postal address", "postal-address")
    parts = [_norm(p) for p in re.split(r"[\n]", address) if p.strip()]
    body = ctx.doc.find("body")
    html_text = _norm(body.text_content() if body is not None else "")
    text = _norm(ctx.built.rendered.text)
    for name, where in (("HTML", html_text), ("text", text)):
        if not all(p in where for p in parts):
            yield Finding(ctx.issue_file, None, "error",
                          f"the postal address ({address.splitlines()[0]}…) is not in the {name} part: the law "
                          "(CAN-SPAM, and most countries') requires it in every newsletter", "postal-address")


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().casefold()


# --- MJML: what MRML accepts silently ----------------------------------------------------

@functools.lru_cache(maxsize=1)
def mjml_spec() -> dict[str, Any]:
    """The MJML component list (see newsletter/data/README.md for its source)."""
    return json.loads((DATA / "mjml-components.json").read_text(encoding="utf-8"))


_COMMENT = re.compile(r"<!--.*?-->", re.S)
_TAG = re.compile(
    r"<(/?)(mjml|mj-[A-Za-z0-9-]*)((?:\s+[^\s=>/\"']+(?:\s*=\s*(?:\"[^\"]*\"|'[^']*'|[^\s>\"']+))?)*)\s*(/?)>")
_ATTR = re.compile(r"([^\s=>/\"']+)(?:\s*=\s*(\"[^\"]*\"|'[^']*'|[^\s>\"']+))?")


@dataclass(frozen=True)
class MjmlProblem:
    """A problem in generated MJML: its line there, a pattern to find it in a template, a message."""

    line: int
    pattern: str
    message: str


def validate_mjml(mjml: str) -> list[MjmlProblem]:
    """Unknown tags, unknown attributes, misplaced children and bad enum/unit values."""
    spec = mjml_spec()
    comps: dict[str, Any] = spec["components"]
    children: dict[str, Any] = spec["children"]
    known_free = set(spec["componentless_tags"])
    global_attrs = set(spec["global_attributes"])
    text = _COMMENT.sub(lambda m: "\n" * m.group(0).count("\n"), mjml)
    out: list[MjmlProblem] = []
    stack: list[str] = []
    raw: str | None = None  # inside an ending-tag component (mj-text...): content is HTML
    for m in _TAG.finditer(text):
        closing, tag, attrs, selfclose = m.group(1), m.group(2), m.group(3), m.group(4)
        line = text.count("\n", 0, m.start()) + 1
        if raw is not None:
            if closing and tag == raw:
                raw = None
                if stack:
                    stack.pop()
            continue
        if closing:
            if tag in stack:
                while stack and stack.pop() != tag:
                    pass
            continue
        parent = stack[-1] if stack else None
        names = [a.group(1) for a in _ATTR.finditer(attrs)]
        values = {a.group(1): (a.group(2) or "").strip("\"'") for a in _ATTR.finditer(attrs)}
        if tag == "mjml":
            allowed: set[str] | None = set(spec["root"]["attributes"])
        elif parent == "mj-attributes" and tag in ("mj-all", "mj-class"):
            allowed = None  # defaults for any attribute
        elif tag in comps:
            allowed = set(comps[tag]["attributes"]) | global_attrs
        elif tag in known_free:
            allowed = {"mj-selector": {"path"}, "mj-html-attribute": {"name"},
                       "mj-include": {"path", "type", "css-inline"}}.get(tag)
        else:
            hint = difflib.get_close_matches(tag, [*comps, *known_free], n=1)
            out.append(MjmlProblem(line, rf"<{re.escape(tag)}\b",
                                   f"unknown MJML tag <{tag}>" + (f" (did you mean <{hint[0]}>?)" if hint else "")
                                   + ": MRML drops it without a word"))
            if not selfclose:
                stack.append(tag)
            continue
        if allowed is not None:
            for name in names:
                if name not in allowed:
                    hint = difflib.get_close_matches(name, sorted(allowed), n=1)
                    out.append(MjmlProblem(line, rf"<{re.escape(tag)}\b[^>]*\s{re.escape(name)}\s*=",
                                           f"unknown attribute {name}=\"…\" on <{tag}>"
                                           + (f" (did you mean {hint[0]}?)" if hint else "")
                                           + ": MRML ignores it without a word"))
            types = comps.get(tag, {}).get("attributes", {})
            for name, value in values.items():
                problem = _bad_value(types.get(name), value)
                if problem:
                    out.append(MjmlProblem(line, rf"<{re.escape(tag)}\b[^>]*\s{re.escape(name)}\s*=",
                                           f"<{tag} {name}=\"{value}\">: {problem}"))
        if parent is not None and parent in children and children[parent] != "*" and tag in comps \
                and tag not in children[parent]:
            out.append(MjmlProblem(line, rf"<{re.escape(tag)}\b",
                                   f"<{tag}> cannot be inside <{parent}> (it may be inside: "
                                   + ", ".join(k for k, v in children.items() if v != "*" and tag in v) + ")"))
        if not selfclose:
            stack.append(tag)
            if tag in comps and comps[tag]["ending_tag"]:
                raw = tag
    return out


def _bad_value(kind: str | None, value: str) -> str | None:
    """Check enum and unit types the way mjml-validator does; other types pass."""
    if not kind or "{{" in value:
        return None
    m = re.fullmatch(r"enum\((.*)\)", kind)
    if m:
        choices = m.group(1).split(",")
        return None if value in choices else f"must be one of {', '.join(choices)}"
    m = re.fullmatch(r"unit\(([^)]*)\)(?:\{(\d+),?(\d+)?\})?", kind)
    if m:
        units = m.group(1).split(",")  # an empty unit ("unit(px,%,)") allows a bare number
        low = int(m.group(2) or 1)
        high = int(m.group(3) or m.group(2) or 1)
        tokens = value.split()
        unit_rx = "|".join(re.escape(u) for u in units)
        ok = low <= len(tokens) <= high and all(re.fullmatch(rf"(\d*\.?\d+)({unit_rx})|0", t) for t in tokens)
        if not ok:
            count = f"{low}" if low == high else f"{low} to {high}"
            return f"must be {count} value(s) in {', '.join(u or 'a bare number' for u in units)}"
    return None


def _mjml(ctx: _Context) -> Iterator[Finding]:
    for p in validate_mjml(ctx.built.rendered.mjml):
        hit = ctx.in_templates(re.compile(p.pattern))
        file, line = hit or (display(ctx.built.out_dir / "email.mjml"), p.line)
        yield Finding(file, line, "error", p.message, "mjml")


# --- CSS the clients ignore --------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def css_support() -> dict[str, Any]:
    """The caniemail.com subset (see newsletter/data/README.md for its source)."""
    return json.loads((DATA / "caniemail-css.json").read_text(encoding="utf-8"))


#: Not reported: hints a client may ignore with nothing lost. An @media block is not
#: reported either: a client that ignores it keeps the base design, which is its purpose;
#: declarations inside it are checked only against the clients that apply the block.
HINTS = {"css-color-scheme", "css-at-media", "css-comments", "css-important"}
_FUNCTIONS = {"linear-gradient": "css-linear-gradient", "radial-gradient": "css-radial-gradient",
              "conic-gradient": "css-conic-gradient", "calc": "css-unit-calc", "clamp": "css-function-clamp",
              "min": "css-function-min", "max": "css-function-max", "rgb": "css-rgb", "rgba": "css-rgba",
              "light-dark": "css-function-light-dark", "lch": "css-modern-color", "oklch": "css-modern-color",
              "lab": "css-modern-color", "oklab": "css-modern-color", "var": "css-variables"}
_MEDIA = {"prefers-color-scheme": "css-at-media-prefers-color-scheme", "orientation": "css-at-media-orientation",
          "hover": "css-at-media-hover", "any-hover": "css-at-media-hover",
          "prefers-reduced-motion": "css-at-media-prefers-reduced-motion",
          "-webkit-device-pixel-ratio": "css-at-media-device-pixel-ratio",
          "-webkit-min-device-pixel-ratio": "css-at-media-device-pixel-ratio"}


@functools.lru_cache(maxsize=1)
def _keyword_index() -> dict[str, str]:
    index: dict[str, str] = {}
    for slug, feat in css_support()["features"].items():
        for kw in str(feat.get("keywords") or "").split(","):
            kw = kw.strip()
            # only longhand property names (border-top, column-gap): plain words like "color" are topics
            if re.fullmatch(r"[a-z]+-[a-z-]+", kw) and f"css-{kw}" not in css_support()["features"]:
                index.setdefault(kw, slug)
    return index


def property_features(prop: str, value: str) -> set[str]:
    """caniemail features a declaration uses."""
    feats = css_support()["features"]
    prop, value = prop.strip().lower(), value.strip().lower()
    out: set[str] = set()
    if prop in ("left", "right", "top", "bottom"):
        out.add("css-left-right-top-bottom")
    elif f"css-{prop}" in feats:
        out.add(f"css-{prop}")
    elif prop in _keyword_index():
        out.add(_keyword_index()[prop])
    elif prop.split("-")[0] in ("margin", "padding", "border") and f"css-{prop.split('-')[0]}" in feats:
        out.add(f"css-{prop.split('-')[0]}")
    if prop == "display":
        kind = {"flex": "css-display-flex", "inline-flex": "css-display-flex", "grid": "css-display-grid",
                "inline-grid": "css-display-grid", "none": "css-display-none"}.get(value.replace("!important", "")
                                                                                   .strip())
        if kind:
            out.add(kind)
    for fn in re.findall(r"([a-z-]+)\(", value):
        if fn in _FUNCTIONS:
            out.add(_FUNCTIONS[fn])
    for unit in re.findall(r"\d(rem|vh|vw|vmin|vmax|ch|ex|pt|cm|mm|in|pc)\b", value):
        out.add(f"css-unit-{unit}")
    return {f for f in out if f in feats}


def selector_features(selector: str) -> set[str]:
    feats = css_support()["features"]
    out = set()
    for colons, name in re.findall(r"(::?)([a-z-]+)", selector.lower()):
        slug = f"css-pseudo-{'element' if colons == '::' or name in ('before', 'after') else 'class'}-{name}"
        if slug in feats:
            out.add(slug)
    return out


@dataclass(frozen=True)
class CssUse:
    """A feature used by the CSS we wrote, and the clients that would apply it."""

    feature: str
    needle: str  # text to look for in templates
    clients: frozenset[str]


def css_uses(mjml: str) -> list[CssUse]:
    """CSS the templates wrote: <mj-style>, <style> in <mj-raw>, and style="" on HTML inside components."""
    import cssutils

    cssutils.log.setLevel(50)
    all_clients = frozenset(css_support()["clients"])
    uses: list[CssUse] = []
    sheets = re.findall(r"<mj-style\b[^>]*>(.*?)</mj-style>", mjml, re.S)
    sheets += re.findall(r"<style\b[^>]*>(.*?)</style>", mjml, re.S)
    for sheet_text in sheets:
        sheet = cssutils.parseString(sheet_text, validate=False)
        uses.extend(_rules_uses(sheet.cssRules, all_clients))
    for style in re.findall(r"\sstyle\s*=\s*\"([^\"]*)\"", mjml) + re.findall(r"\sstyle\s*=\s*'([^']*)'", mjml):
        decl = cssutils.parseStyle(style, validate=False)
        for prop in decl:
            for feat in property_features(prop.name, prop.value):
                uses.append(CssUse(feat, prop.name, all_clients))
    return uses


def _rules_uses(rules: Any, clients: frozenset[str]) -> Iterator[CssUse]:
    support = css_support()["features"]
    for rule in rules:
        kind = rule.type
        if kind == rule.STYLE_RULE:
            for feat in selector_features(rule.selectorText):
                yield CssUse(feat, rule.selectorText.split(",")[0].strip(), clients)
            for prop in rule.style:
                for feat in property_features(prop.name, prop.value + (" !important" if prop.priority else "")):
                    yield CssUse(feat, prop.name, clients)
        elif kind == rule.MEDIA_RULE:
            media = rule.media.mediaText.lower()
            gates = {"css-at-media"} | {slug for name, slug in _MEDIA.items() if re.search(rf"\b{name}\b", media)}
            applying = frozenset(c for c in clients
                                 if not any(_status(support.get(g, {}), c) == "n" for g in gates))
            yield from _rules_uses(rule.cssRules, applying)
        elif kind == rule.FONT_FACE_RULE:
            yield CssUse("css-at-font-face", "@font-face", clients)
        elif kind == rule.IMPORT_RULE:
            yield CssUse("css-at-import", "@import", clients)
        else:
            text = (getattr(rule, "cssText", "") or "").lstrip().lower()
            for at, slug in (("@keyframes", "css-at-keyframes"), ("@supports", "css-at-supports"),
                             ("@-webkit-keyframes", "css-at-keyframes")):
                if text.startswith(at):
                    yield CssUse(slug, at, clients)


def _status(feature: dict[str, Any], client: str) -> str:
    value = feature.get("support", {}).get(client, "u@")
    return value.split("@")[0]


GMAIL = "gmail/desktop-webmail"


def _css(ctx: _Context) -> Iterator[Finding]:
    """CSS we wrote that Gmail, or at least two of the five major clients, ignore.

    A gap in one client only is reported with `strict_css`: in practice that client is
    Outlook for Windows, whose Word engine drops most CSS past the basics (rounded corners,
    background images, white-space); MJML's output already carries its Outlook fallbacks,
    so such CSS is nearly always a deliberate enhancement, and reporting it on every check
    would teach editors to ignore warnings.
    """
    data = css_support()
    names = data["clients"]
    by_feature: dict[str, tuple[str, set[str]]] = {}
    for use in css_uses(ctx.built.rendered.mjml):
        if use.feature in HINTS:
            continue
        feat = data["features"][use.feature]
        missing = {c for c in use.clients if _status(feat, c) == "n"}
        if missing and (ctx.strict_css or GMAIL in missing or len(missing) >= 2):
            needle, clients = by_feature.setdefault(use.feature, (use.needle, set()))
            clients |= missing
    for slug, (needle, clients) in by_feature.items():
        feat = data["features"][slug]
        pattern = re.compile(rf"(?<![\w-]){re.escape(needle)}\s*:" if re.fullmatch(r"[a-z-]+", needle)
                             else re.escape(needle))
        hit = ctx.in_templates(pattern)
        file, line = hit or (ctx.issue_file, None)
        who = ", ".join(names[c] for c in names if c in clients)
        yield Finding(file, line, "warning",
                      f"CSS {feat['title']} is not supported by {who} (caniemail: {feat['url']})", "css")


# --- online: does every link answer? -----------------------------------------------------

def check_online(built: Built, *, timeout: float = 5.0, workers: int = 8) -> list[Finding]:
    """HEAD every http(s) link and image of the HTML part, a few at a time; GET if HEAD is refused.

    The issue's own web version is skipped: it is published after the send, not before.
    """
    ctx = _Context(built)
    web_url = built.config.web_url(built.slug)
    targets = [(kind, url) for kind, url in _links(ctx)
               if url.lower().startswith(("http://", "https://")) and not PLACEHOLDER.search(url)
               and url.rstrip("/") != web_url.rstrip("/")]
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        answers = list(pool.map(lambda t: _probe(t[1], timeout), targets))
    out = []
    for (kind, url), problem in zip(targets, answers, strict=True):
        if problem:
            file, line = ctx.locate(url)
            out.append(Finding(file, line, "error", f"{kind} {problem}: {url}", "online"))
    return out


def _probe(url: str, timeout: float) -> str | None:
    """None if `url` answers with a success (after redirects), else what went wrong."""
    headers = {"User-Agent": "newsletter-check/1 (link checker)"}
    for method in ("HEAD", "GET"):
        req = urllib.request.Request(url, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - http(s) only, checked above
                if resp.status < 400:
                    return None
                status = resp.status
        except urllib.error.HTTPError as e:
            status = e.code
        except (urllib.error.URLError, OSError, ValueError) as e:
            reason = getattr(e, "reason", e)
            return f"does not answer ({'timed out' if 'timed out' in str(reason) else reason})"
        if method == "HEAD" and status in (403, 405, 501):
            continue  # some servers refuse HEAD only
        return f"answers HTTP {status}"
    return f"answers HTTP {status}"
