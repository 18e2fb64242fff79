"""Rules about languages: theme strings an issue's language leaves in English, a language with
no translation at all, and an edition that lacks a block its issue has."""

from __future__ import annotations

from collections.abc import Iterator
from difflib import SequenceMatcher

from newsletter.compose import i18n
from newsletter.compose.render import default_theme
from newsletter.lint.context import Context
from newsletter.lint.findings import Finding

SHOW = 5


def _translations(ctx: Context) -> Iterator[Finding]:
    """Readers of a German issue should not meet an English "Read more": say which strings are missing."""
    built = ctx.built
    config = built.config
    line = ctx.key_line("language")
    resolved = i18n.resolve(built.language, config.default_language, config.locale_dir)
    if resolved.note:
        yield Finding(ctx.issue_file, line, "warning", resolved.note, "language")
    if i18n.primary(resolved.used) == "en":
        return  # the theme's own language: nothing to translate (and no templates to scan on every check)
    messages = list(i18n.theme_messages([config.templates_dir, default_theme()]))
    missing = i18n.missing(resolved.used, messages, config.locale_dir)
    if missing:
        shown = ", ".join(repr(m) for m in missing[:SHOW]) + (", …" if len(missing) > SHOW else "")
        yield Finding(ctx.issue_file, line, "warning",
                      f"{len(missing)} of the theme's strings have no {resolved.used} translation and show in "
                      f"English: {shown} (see `newsletter translations check`)", "language")


def _edition_blocks(ctx: Context) -> Iterator[Finding]:
    """An edition is the same issue in another language: a block the issue has and it lacks is
    usually a forgotten translation."""
    main = ctx.built.main
    if main is None:
        return
    ours = [b["type"] for b in ctx.built.issue.blocks]
    theirs = [b["type"] for b in main.blocks]
    matcher = SequenceMatcher(a=theirs, b=ours, autojunk=False)
    for tag, i1, i2, _j1, _j2 in matcher.get_opcodes():
        if tag in ("delete", "replace"):
            for i in range(i1, i2):
                yield Finding(ctx.issue_file, ctx.key_line("blocks"), "warning",
                              f"the {ctx.built.edition} edition has no counterpart of blocks[{i}] "
                              f"({theirs[i]}) of {main.path.name}", "edition")


RULES = (_translations, _edition_blocks)
