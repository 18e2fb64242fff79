"""Issue -> email: Jinja2 renders MJML, MRML (mjml-python) turns it into HTML, premailer
inlines the CSS; a text part and a web version come from the same issue.

Per-recipient fields stay literal placeholders (`{{ unsubscribe_url }}`) through every
step: around premailer they are swapped for inert tokens, because lxml's serializer
URL-encodes `{{ x }}` inside `href` (premailer's own `preserve_handlebar_syntax` misses
that case).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from newsletter import i18n
from newsletter.config import Config
from newsletter.errors import InputError, Problem
from newsletter.issue import Issue
from newsletter.markdown import html_to_text, to_html, to_text
from newsletter.placeholders import PLACEHOLDER, Recipient, protect, restore


def default_theme() -> Path:
    """The bundled theme: packaged as newsletter/_theme in a wheel, top-level templates/ in a checkout."""
    packaged = Path(__file__).parent / "_theme"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parents[1] / "templates"


@dataclass(frozen=True)
class Rendered:
    """One issue, rendered once: email HTML and text still hold per-recipient placeholders."""

    mjml: str
    html: str
    text: str
    web_html: str
    fields: frozenset[str]


def environment(config: Config, language: str) -> jinja2.Environment:
    """Jinja2 environment: project templates first, then the default theme; autoescape on."""
    folders = [str(config.templates_dir)] if config.templates_dir.is_dir() else []
    folders.append(str(default_theme()))
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(folders),
        # escape everything except the plain-text part, which is not HTML
        autoescape=lambda name: not (name or "").endswith(".txt.j2"),
        undefined=jinja2.StrictUndefined,
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.install_gettext_translations(i18n.translations(language), newstyle=True)  # type: ignore[attr-defined]
    env.filters["markdown"] = to_html
    env.filters["markdown_text"] = to_text
    env.filters["html_text"] = html_to_text
    env.filters["date"] = _format_date
    env.globals["recipient"] = Recipient()
    return env


def _format_date(value: Any, language: str = "en") -> str:
    from babel.dates import format_date

    return format_date(value, format="long", locale=language) if value else ""


def context(issue: Issue, config: Config, *, personal: bool) -> dict[str, Any]:
    """What every template sees. `personal` is False for the web version (no reader fields)."""
    language = issue.language or config.default_language
    web_url = config.web_url(issue.slug)
    links = dict(issue.links)
    return {
        "issue": issue,
        "config": config,
        "language": language,
        "personal": personal,
        "web_url": web_url,
        "show_view_in_browser": personal and links.get("view_in_browser") is not False,
        "links": links,
        "blocks": issue.blocks,
    }


def render_mjml(issue: Issue, config: Config, *, personal: bool = True) -> str:
    language = issue.language or config.default_language
    env = environment(config, language)
    return _render(env, "email.mjml.j2", context(issue, config, personal=personal), config)


def render_text(issue: Issue, config: Config) -> str:
    language = issue.language or config.default_language
    env = environment(config, language)
    text = _render(env, "email.txt.j2", context(issue, config, personal=True), config)
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"


def _render(env: jinja2.Environment, name: str, ctx: dict[str, Any], config: Config) -> str:
    try:
        return env.get_template(name).render(ctx)
    except jinja2.TemplateSyntaxError as e:
        where = _template_path(e.filename, e.name)
        raise InputError([Problem(where, e.lineno, "template", e.message or "syntax error")]) from None
    except jinja2.TemplateNotFound as e:
        raise InputError([Problem(name, None, "template", f"template not found: {e.name}")]) from None
    except jinja2.UndefinedError as e:
        raise InputError([Problem(name, None, "template", f"undefined value: {e.message}")]) from None
    except (OSError, UnicodeDecodeError) as e:
        raise InputError([Problem(name, None, "template", f"cannot read template: {e}")]) from None


def _template_path(filename: str | None, name: str | None) -> str:
    return filename or name or "template"


def mjml_to_html(mjml: str) -> str:
    """MJML -> HTML via MRML. MRML raises on malformed markup; it accepts unknown tags silently."""
    from mjml import mjml2html

    try:
        return mjml2html(mjml, disable_comments=True)
    except Exception as e:  # MRML raises a bare exception type for malformed MJML
        raise InputError([Problem("email.mjml", None, "template", f"MJML error: {e}")]) from None


def inline_css(html: str) -> str:
    """Inline CSS into style attributes, keeping @media (responsive, dark mode) in <style>."""
    import cssutils
    from premailer import Premailer

    cssutils.log.setLevel(logging.CRITICAL)
    out = Premailer(
        protect(html),
        allow_network=False,
        allow_loading_external_files=False,
        keep_style_tags=False,
        strip_important=False,
        disable_validation=True,
        cssutils_logging_level=logging.CRITICAL,
        cache_css_parsing=True,
        remove_classes=False,
    ).transform()
    out = restore(out)
    if not out.lstrip().lower().startswith("<!doctype"):
        out = "<!doctype html>\n" + out
    return out


def render_issue(issue: Issue, config: Config) -> Rendered:
    """The whole pipeline for one issue."""
    mjml = render_mjml(issue, config, personal=True)
    html = inline_css(mjml_to_html(mjml))
    web_mjml = render_mjml(issue, config, personal=False)
    web_html = fill_web(inline_css(mjml_to_html(web_mjml)), issue, config)
    text = render_text(issue, config)
    fields = frozenset(PLACEHOLDER.findall(html)) | frozenset(PLACEHOLDER.findall(text))
    return Rendered(mjml=mjml, html=html, text=text, web_html=web_html, fields=fields)


def fill_web(html: str, issue: Issue, config: Config) -> str:
    """The web version has no reader: merge fields take their neutral fallbacks."""
    language = issue.language or config.default_language
    fallbacks = {"name": i18n.gettext(language, "reader"), "email": ""}

    def sub(m: re.Match[str]) -> str:
        return fallbacks.get(m.group(1), "")

    return PLACEHOLDER.sub(sub, html)
