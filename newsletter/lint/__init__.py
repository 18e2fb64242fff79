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

from pathlib import Path

from newsletter.compose.build import Built
from newsletter.lint import a11y, content, css, fields, language, links, mjml
from newsletter.lint.context import Context
from newsletter.lint.findings import Finding, dedupe, has_errors
from newsletter.lint.mjml import validate_mjml
from newsletter.lint.online import check_online

RULES = (*content.RULES[:4], *a11y.RULES, *fields.RULES, *links.RULES, *content.RULES[4:], *mjml.RULES,
         *css.RULES, *language.RULES)


def lint(built: Built, *, strict_css: bool = False, subscribers: Path | None = None) -> list[Finding]:
    """Every finding about a built issue, in a stable order. Pure: no network, no writes.

    `strict_css` also reports CSS that only one major client lacks (see `lint.css`).
    `subscribers`: the list the issue is for (merge fields must be its columns); by
    default the project's configured `subscribers` file, when it exists.
    """
    ctx = Context(built, strict_css=strict_css, subscribers=subscribers)
    out: list[Finding] = []
    for rule in RULES:
        out.extend(rule(ctx))
    return dedupe(out)


__all__ = ["Finding", "check_online", "has_errors", "lint", "validate_mjml"]
