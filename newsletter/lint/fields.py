"""Merge fields: every `{{ field }}` an issue uses must be a standard field or a column of the list.

A misspelt field (`Dear {{ nmae }}`) renders, builds and sends without complaint, and every
reader gets "Dear ,". So a field that is neither standard (name, email, unsubscribe_url) nor
a column of the subscriber list is an error, named at the line of the issue (or template)
that uses it, with the columns the list does have. Which list: the one being sent (`send`
passes it), else the project's configured `subscribers` file. Without any list to compare
with, it is a warning, as in `build`: the field may well be a column of a list not here yet.
A field that exists but is empty for some readers is fine; `{{ city | default("your town") }}`
gives those readers a fallback.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from newsletter.audience.subscribers import columns_of
from newsletter.compose.render import default_theme
from newsletter.deliver.placeholders import STANDARD_FIELDS, link_fields, locate_field, unknown_fields
from newsletter.errors import InputError
from newsletter.lint.findings import Finding
from newsletter.paths import display

if TYPE_CHECKING:
    from newsletter.lint.context import Context

RULE = "merge-field"


def list_columns(path: Path | None) -> tuple[list[str] | None, list[str]]:
    """(columns of the list at `path`, problems reading its header); (None, []) without a list."""
    if path is None or not path.is_file():
        return None, []
    try:
        return columns_of(path, display=display(path)), []
    except InputError as e:
        return None, e.lines()


def where(ctx: Context, field: str) -> tuple[str, int | None]:
    """The issue line that uses `field`, else the first template line that does."""
    path, line = locate_field(ctx.built.issue.path, (ctx.built.config.templates_dir, default_theme()), field)
    return display(path), line


def _fields(ctx: Context) -> Iterator[Finding]:
    path = ctx.subscribers if ctx.subscribers is not None else ctx.built.config.subscribers
    columns, problems = list_columns(path)
    for problem in problems:
        yield Finding(display(path), None, "error", problem, RULE)
    unknown = unknown_fields(ctx.built.rendered.fields, columns or ())
    standard = ", ".join(STANDARD_FIELDS)
    for field in unknown:
        file, line = where(ctx, field)
        if columns is None:
            yield Finding(file, line, "warning",
                          f"{{{{ {field} }}}} is not a standard field ({standard}) and there is no subscriber "
                          f"list to compare with ({display(path)} not found): it stays empty unless the list has "
                          f"a '{field}' column", RULE)
        else:
            yield Finding(file, line, "error",
                          f"{{{{ {field} }}}} is neither a standard field ({standard}) nor a column of "
                          f"{display(path)} (its columns: {', '.join(columns)}): every reader would get it empty",
                          RULE)


def _link_fallbacks(ctx: Context) -> Iterator[Finding]:
    """A fallback of a field used as a whole link is itself a link: the literal-link rule applies."""
    from newsletter.compose.schema import url_problem

    for name, fallback in link_fields(ctx.built.rendered.html):
        if fallback and (why := url_problem(fallback)) is not None:
            file, line = where(ctx, name)
            yield Finding(file, line, "error", f"the fallback of {{{{ {name} }}}} is used as a link: {why}", RULE)


RULES = (_fields, _link_fallbacks)
