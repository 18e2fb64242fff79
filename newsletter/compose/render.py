"""Issue -> email: Jinja2 renders MJML, MRML (mjml-python) turns it into HTML, premailer
inlines the CSS; a text part and a web version come from the same issue.

Per-recipient fields stay literal placeholders (`{{ unsubscribe_url }}`) through every
step: around premailer they are swapped for inert tokens, because lxml's serializer
URL-encodes `{{ x }}` inside `href` (premailer's own `preserve_handlebar_syntax` misses
that case).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import re
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from newsletter.compose import i18n
from newsletter.compose.issue import Issue
from newsletter.compose.markdown import html_to_text, to_html, to_text
from newsletter.config import Config
from newsletter.deliver.placeholders import PLACEHOLDER, Recipient, protect, restore
from newsletter.errors import InputError, Problem
from newsletter.paths import display


def default_theme() -> Path:
    """The bundled theme: packaged as newsletter/_theme in a wheel, top-level templates/ in a checkout."""
    packaged = Path(__file__).parents[1] / "_theme"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parents[2] / "templates"


@dataclass(frozen=True)
class Rendered:
    """One issue, rendered once: email HTML and text still hold per-recipient placeholders."""

    mjml: str
    html: str
    text: str
    web_html: str
    fields: frozenset[str]


class _ThemeLoader(jinja2.FileSystemLoader):
    """FileSystemLoader that reports an unreadable template by its path, not a traceback."""

    def get_source(self, environment: jinja2.Environment, template: str) -> tuple[str, str, Any]:
        try:
            return super().get_source(environment, template)
        except UnicodeDecodeError as e:
            raise _TemplateReadError(self._find(template), "not valid UTF-8 text", e.object[: e.start]) from None
        except (IsADirectoryError, PermissionError) as e:
            raise _TemplateReadError(self._find(template), f"cannot read template: {e.strerror}") from None

    def _find(self, template: str) -> str:
        for folder in self.searchpath:
            candidate = Path(folder) / template
            if candidate.exists():
                return str(candidate)
        return template


class _TemplateReadError(Exception):
    def __init__(self, path: str, message: str, before: bytes = b""):
        super().__init__(message)
        self.path, self.message = path, message
        self.line = before.count(b"\n") + 1 if before else None


def environment(config: Config, language: str) -> jinja2.Environment:
    """Jinja2 environment: project templates first, then the default theme; autoescape on."""
    folders = [str(config.templates_dir)] if config.templates_dir.is_dir() else []
    folders.append(str(default_theme()))
    env = jinja2.Environment(
        loader=_ThemeLoader(folders),
        # escape everything except the plain-text part, which is not HTML
        autoescape=lambda name: not (name or "").endswith(".txt.j2"),
        undefined=jinja2.StrictUndefined,
        extensions=["jinja2.ext.i18n", "jinja2.ext.do"],
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        bytecode_cache=_bytecode_cache(),
    )
    env.install_gettext_translations(  # type: ignore[attr-defined]
        i18n.translations(language, config.locale_dir, config.default_language), newstyle=True)
    env.filters["markdown"] = to_html
    env.filters["markdown_text"] = lambda text, width=72: to_text(text, width)
    env.filters["html_text"] = html_to_text
    env.filters["date"] = i18n.format_date
    env.filters["underline"] = _underline
    env.filters["quote_text"] = _quote_text
    env.filters["display_url"] = _display_url
    env.filters["lead_in"] = _lead_in
    env.filters["isolate"] = _isolate if i18n.is_rtl(language) else _same
    env.globals["recipient"] = Recipient()
    env.globals["lang_attr"] = lang_attr
    env.globals["more_link"] = functools.partial(more_link, arrow="&larr;") if i18n.is_rtl(language) else more_link
    return env


@functools.cache
def _bytecode_cache() -> jinja2.BytecodeCache | None:
    """Compiled templates kept between runs, in Jinja's per-user folder under the temp dir:
    compiling the theme was most of the Jinja2 time of a build (~60 ms), loading it takes a
    few. Sources are checksummed, so an edited template is recompiled. None if unusable."""
    try:
        return _QuietBytecodeCache()
    except (OSError, RuntimeError):
        return None


class _QuietBytecodeCache(jinja2.FileSystemBytecodeCache):
    """A cache that cannot be written (disk full, read-only) only makes the build slower."""

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        try:
            super().dump_bytecode(bucket)
        except OSError:
            pass


def _underline(text: str, char: str = "-") -> str:
    """A plain-text heading: the text, then a rule as long as it."""
    return f"{text}\n{char * min(len(text), 72)}"


def _quote_text(text: str) -> str:
    """Indent a plain-text quotation and put it between typographic quote marks."""
    lines = text.strip().splitlines() or [""]
    body = "\n".join("  " + line if line else "" for line in lines)
    return "  \u201c" + body[2:] + "\u201d"


def _lead_in(text: str) -> str:
    """Text introducing a URL on the next line: 'View it in your browser:' but 'click here.'"""
    return text if text.rstrip()[-1:] in (".", ":", "!", "?", "…") else f"{text}:"


def _isolate(text: Any) -> Any:
    """A name, number or URL set inside right-to-left text, isolated (FSI ... PDI) so the bidi
    algorithm neither reorders it nor lets it drag the punctuation around it along."""
    if text is None or text == "":
        return text
    from markupsafe import Markup, escape

    return Markup("\u2068{}\u2069").format(escape(text)) if isinstance(text, Markup) else f"\u2068{text}\u2069"


def _same(text: Any) -> Any:
    return text


def lang_attr(part: Any, fallback: str | None = None) -> Markup:
    """` lang="fr"` for a part (block, item, link, image) written in another language than the
    issue, so screen readers switch voice and browsers hyphenate right; empty otherwise."""
    lang = (part.get("lang") if isinstance(part, dict) else None) or fallback
    return Markup(' lang="{}"').format(lang) if lang else Markup("")


def more_link(url: str, label: str, about: str | None, lang: str | None = None, *,
              arrow: str = "&rarr;") -> Markup:
    """A "Read more →" link whose accessible name also says what it leads to ("Read more:
    <title>"): ten identical "Read more" links are ten unknowns in a screen reader's list of
    links. The visible words start the name (WCAG 2.5.3); the arrow is not read out. Right to
    left, the environment passes "←": an arrow points where the reading goes."""
    name = f"{label}: {about}" if about else label
    mark = Markup('<span aria-hidden="true">&nbsp;' + arrow + "</span>")  # arrow: an HTML entity of ours
    return Markup('<a class="nl-tap" href="{}" aria-label="{}"{}>{}{}</a>').format(
        url, name, Markup(' lang="{}"').format(lang) if lang else Markup(""), label, mark)


def _display_url(url: str) -> str:
    """A URL as people write it: no scheme, no trailing slash."""
    return re.sub(r"^https?://(www\.)?", "", url).rstrip("/")


def context(issue: Issue, config: Config, *, personal: bool) -> dict[str, Any]:
    """What every template sees. With `personal` False the templates leave out the reader's
    parts themselves; the build instead renders once and strips `nl-personal` (strip_personal)."""
    language = config.language_of(issue)
    web_url = config.web_url(issue.slug, issue.edition)
    links = dict(issue.links)
    rtl = i18n.is_rtl(language)
    # the list's own unsubscribe line is written per language: the templates' config.unsubscribe_text
    # is this edition's (None: the theme's translated line), not the list's default language's
    line = config.unsubscribe_text_for(language)
    if line != config.unsubscribe_text:
        config = dataclasses.replace(config, unsubscribe_text=line)
    return {
        "issue": issue,
        "config": config,
        "theme": config.theme,
        "language": language,
        # right to left: dir="rtl", text aligned to the right ("start"), arrows pointing left
        "dir": "rtl" if rtl else "ltr",
        "start": "right" if rtl else "left",
        "end": "left" if rtl else "right",
        "arrow": "\u2190" if rtl else "\u2192",
        "bullet": "\u25c2" if rtl else "\u25b8",  # ◂ ▸ (arrows and triangles are not mirrored by bidi)
        "comma": "\u060c " if i18n.primary(language) in i18n.ARABIC_SCRIPT else ", ",  # ، in Arabic script
        "personal": personal,
        "web_url": web_url,
        "show_view_in_browser": personal and links["view_in_browser"]["show"],
        "links": links,
        "blocks": issue.blocks,
    }


def render_mjml(issue: Issue, config: Config, *, personal: bool = True, env: jinja2.Environment | None = None) -> str:
    """The issue as MJML (email.mjml), before MRML and CSS inlining."""
    language = config.language_of(issue)
    env = env or environment(config, language)
    return _render(env, "email.mjml.j2", context(issue, config, personal=personal), config)


def render_text(issue: Issue, config: Config, *, env: jinja2.Environment | None = None) -> str:
    """The text/plain part, with placeholders still in it."""
    language = config.language_of(issue)
    env = env or environment(config, language)
    text = _render(env, "email.txt.j2", context(issue, config, personal=True), config)
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"


def _render(env: jinja2.Environment, name: str, ctx: dict[str, Any], config: Config) -> str:
    """Render one top-level template; any mistake in a (project's) template becomes a Problem."""
    try:
        return env.get_template(name).render(ctx)
    except InputError:
        raise
    except jinja2.TemplateSyntaxError as e:
        where = display(e.filename or e.name or name)
        raise InputError([Problem(where, e.lineno, "template", f"syntax error: {e.message}")]) from None
    except jinja2.TemplateNotFound as e:
        file, line = _template_frame(e, name)
        raise InputError([Problem(file, line, "template", f"template not found: {e.name}")]) from None
    except _TemplateReadError as e:
        raise InputError([Problem(display(e.path), e.line, "template", e.message)]) from None
    except (jinja2.TemplateError, TypeError, ValueError, AttributeError, KeyError, IndexError,
            ZeroDivisionError, RecursionError) as e:
        file, line = _template_frame(e, name)
        msg = e.message if isinstance(e, jinja2.TemplateError) and e.message else str(e) or type(e).__name__
        raise InputError([Problem(file, line, "template", f"error: {msg}")]) from None


def _template_frame(e: BaseException, fallback: str) -> tuple[str, int | None]:
    """The innermost template file and line in a Jinja2 traceback (Jinja2 rewrites frames to them)."""
    for frame in reversed(traceback.extract_tb(e.__traceback__)):
        if frame.filename.endswith(".j2"):
            return display(frame.filename), frame.lineno
    return fallback, None



def mjml_to_html(mjml: str) -> str:
    """MJML -> HTML via MRML. MRML raises on malformed markup; it accepts unknown tags silently."""
    from mjml import mjml2html

    try:
        return mjml2html(mjml, disable_comments=True)
    except Exception as e:  # MRML raises a bare exception type for malformed MJML
        raise InputError([Problem("email.mjml", None, "template", f"MJML error: {e}")]) from None


def _compile(mjml: str, issue: Issue, config: Config) -> str:
    """mjml_to_html, and when MRML refuses the whole, find the template that broke it."""
    try:
        return mjml_to_html(mjml)
    except InputError as whole:
        raise InputError([_locate_mjml_error(issue, config) or whole.problems[0]]) from None


def _locate_mjml_error(issue: Issue, config: Config) -> Problem | None:
    """MRML's errors carry no position; compile each partial and block alone to name the culprit."""
    language = config.language_of(issue)
    env = environment(config, language)
    ctx = context(issue, config, personal=True)
    parts = [("partials/header.mjml.j2", "", ctx), ("partials/footer.mjml.j2", "", ctx)]
    parts += [(f"blocks/{b['type']}.mjml.j2", f"blocks[{i}]", {**ctx, "block": b})
              for i, b in enumerate(issue.blocks)]
    for name, field, part_ctx in parts:
        template = env.get_template(name)
        body = template.render(part_ctx)
        try:
            mjml_to_html(f"<mjml><mj-body>{body}</mj-body></mjml>")
        except InputError as e:
            message = e.problems[0].message
            return Problem(display(template.filename or name), None, field or "template", message)
    return None


def inline_css(html: str) -> str:
    """Inline CSS into style attributes, keeping @media (responsive, dark mode) in <style>."""
    try:
        out = _premailer(html)
    except Exception as e:  # lxml/cssutils errors on CSS a project's template wrote
        raise InputError([Problem("email.html", None, "template", f"cannot inline the CSS: {e}")]) from None
    out = _squeeze_styles(restore(out))
    if not out.lstrip().lower().startswith("<!doctype"):
        out = "<!doctype html>\n" + out
    return out


_STYLE_BLOCK = re.compile(r"(<style\b[^>]*>)(.*?)(</style>)", re.S | re.I)


def _squeeze_styles(html: str) -> str:
    """The CSS left in <style> blocks without its indentation and the spaces around
    punctuation: ~1.5 KB per message, the same rules."""
    def squeeze(m: re.Match[str]) -> str:
        css = re.sub(r"/\*.*?\*/", "", m.group(2), flags=re.S)
        css = re.sub(r"\s+", " ", css)
        css = re.sub(r"\s*([{};,])\s*", r"\1", css)
        return m.group(1) + css.strip() + m.group(3)

    return _STYLE_BLOCK.sub(squeeze, html)


#: The <style> blocks MJML writes itself: its reset (`#outlook a`, `body`, `table, td`, `img`,
#: `p`), the Outlook group fix and the column widths. They already work from <style> (every
#: client that would need them inlined ignores them anyway), and inlining the reset copied it
#: onto every table cell: ~8 KB of the FIDH example. premailer leaves these alone.
_MJML_STYLE = re.compile(r"<style(?![^>]*data-premailer)([^>]*)>(?=\s*(?:#outlook a\b|\.mj-|\.moz-text-html|"
                         r"@media[^{]*\{\s*(?:\w+)?\.mj-))")
#: HTML attributes premailer would derive from inlined CSS on *every* styled element (spans
#: and divs included), overwriting MJML's own; MJML already writes the ones Outlook needs.
_NO_DERIVED_ATTRIBUTES = ["width", "height", "align", "valign", "bgcolor"]


def _premailer(html: str) -> str:
    import cssutils
    from premailer import Premailer

    html = _MJML_STYLE.sub(r'<style\1 data-premailer="ignore">', html)

    cssutils.log.setLevel(logging.CRITICAL)
    # premailer validates every style attribute against cssutils' CSS profiles whatever
    # disable_validation says (merge_style.csstext_to_pairs defaults to validate=True, and
    # align_floating_images parses each <img> style with validation); compiling the
    # profiles' regexes cost ~100 ms of every build. Validation only logs (silenced above)
    # and never changes the output, so drop the profiles. MJML never floats images.
    if cssutils.profile.knownNames:
        cssutils.profile.removeProfile(all=True)
    return Premailer(
        protect(html),
        allow_network=False,
        allow_loading_external_files=False,
        keep_style_tags=False,
        strip_important=False,
        disable_validation=True,
        align_floating_images=False,
        cssutils_logging_level=logging.CRITICAL,
        cache_css_parsing=True,
        remove_classes=False,
        disable_basic_attributes=_NO_DERIVED_ATTRIBUTES,
    ).transform()


def render_issue(issue: Issue, config: Config, alternates: list[tuple[str, str]] | None = None) -> Rendered:
    """The whole pipeline for one issue (or edition). `alternates`: (language, web URL) of every
    edition of the issue, the issue itself first, for the web version's hreflang links."""
    env = environment(config, config.language_of(issue))  # templates compiled once
    mjml = render_mjml(issue, config, personal=True, env=env)
    html = inline_css(_compile(mjml, issue, config))
    web_html = fill_web(strip_personal(html), issue, config)  # one CSS-inlining pass, not two
    if alternates and len(alternates) > 1:
        web_html = _with_alternates(web_html, alternates, config.language_of(issue), config)
    text = render_text(issue, config, env=env)
    fields = frozenset(PLACEHOLDER.findall(html)) | frozenset(PLACEHOLDER.findall(text))
    return Rendered(mjml=mjml, html=html, text=text, web_html=web_html, fields=fields)


def strip_personal(html: str) -> str:
    """The email without its per-reader parts (class `nl-personal`: the view-in-browser line,
    the unsubscribe line), which is the web version. Cheaper than rendering and inlining a
    second document, which was a third of a build's time."""
    import lxml.html

    doc = lxml.html.document_fromstring(protect(html))
    for el in doc.xpath('//*[contains(concat(" ", normalize-space(@class), " "), " nl-personal ")]'):
        el.drop_tree()
    out = lxml.html.tostring(doc, encoding="unicode", doctype="<!doctype html>")
    if "charset=" not in out[: out.find("</head>")]:  # lxml drops the http-equiv charset when writing str
        out = out.replace("<head>", '<head>\n<meta charset="utf-8">', 1)
    return restore(out)


#: where the language switch goes: first in the theme's body wrapper (so its dark-mode colours
#: apply to it), else first in <body>
_BODY_TAGS = (re.compile(r"<div\b[^>]*\bclass=\"(?:[^\"]*\s)?nl-body[\s\"][^>]*>", re.I),
              re.compile(r"<body\b[^>]*>", re.I))


def _with_alternates(html: str, alternates: list[tuple[str, str]], language: str, config: Config) -> str:
    """<link rel="alternate" hreflang> to every edition (and x-default, the issue itself), so
    search engines and readers' browsers find the version in their language; and at the top of
    the page, for people, the same as a line of links, each language named in itself."""
    from html import escape

    links = [f'<link rel="alternate" hreflang="{escape(lang)}" href="{escape(url)}">' for lang, url in alternates]
    links.append(f'<link rel="alternate" hreflang="x-default" href="{escape(alternates[0][1])}">')
    at = html.find("</head>")
    if at >= 0:
        html = html[:at] + "\n".join(links) + "\n" + html[at:]
    items = []
    for lang, url in alternates:
        name = escape(i18n.language_name(lang))
        items.append(f'<strong lang="{escape(lang)}" aria-current="page">{name}</strong>' if lang == language else
                     f'<a href="{escape(url)}" hreflang="{escape(lang)}" lang="{escape(lang)}" '
                     f'style="color:inherit;text-decoration:underline">{name}</a>')
    label = escape(i18n.gettext(language, "Languages", config.locale_dir, config.default_language))
    nav = (f'<nav class="nl-languages" aria-label="{label}" style="max-width:600px;margin:0 auto;padding:12px 16px;'
           'font-family:Helvetica,Arial,sans-serif;font-size:15px;line-height:24px;text-align:center">'
           + " &middot; ".join(items) + "</nav>")
    body = next((m for m in (tag.search(html) for tag in _BODY_TAGS) if m), None)
    return html if body is None else html[:body.end()] + "\n" + nav + html[body.end():]


def fill_web(html: str, issue: Issue, config: Config) -> str:
    """The web version has no reader: merge fields take their neutral fallbacks."""
    language = config.language_of(issue)
    fallbacks = {"name": i18n.gettext(language, "reader", config.locale_dir, config.default_language), "email": ""}

    def sub(m: re.Match[str]) -> str:
        return fallbacks.get(m.group(1), "")

    return PLACEHOLDER.sub(sub, html)
