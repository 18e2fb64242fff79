"""`newsletter status` with no issue, or with a folder or several: one line per issue.

The overview counts what the ledger holds (sent, failed, uncertain) for each issue file; it
does not read the subscriber list (that is what `newsletter status ISSUE` does, for one issue,
to count who is still pending), so it stays instant with a big list and many issues.
"""

from __future__ import annotations

from pathlib import Path

import click

from newsletter.config import Config
from newsletter.errors import InputError, Problem
from newsletter.paths import display


def print_overview(paths: tuple[Path, ...], config: Config) -> None:
    """One line per issue file, in date order: its id, what the ledger holds, its subject."""
    from newsletter.compose.issue import load_issue
    from newsletter.store import open_store, store_exists
    from newsletter.store.ledger import Ledger

    if not paths or (len(paths) == 1 and not paths[0].is_file()):
        where = display(paths[0]) if paths else display(config.root / "issues")
        raise InputError([Problem(where, None, "", "no issue files (*.yaml) here")])
    issues, problems = [], []
    for path in paths:
        try:
            issues.append(load_issue(path, display=display(path)))
        except InputError as e:
            problems.extend(e.problems)
    if problems:
        raise InputError(problems)
    issues.sort(key=lambda i: (i.date, i.slug))
    store = open_store(config, readonly=True) if store_exists(config) else None
    try:
        rows = []
        for issue in issues:
            counts = Ledger(store, issue.slug).counts() if store is not None else {}
            uncertain = counts.get("uncertain", 0) + counts.get("sending", 0)
            if any(counts.values()):
                state = (f"sent {counts.get('sent', 0):,} · failed {counts.get('failed', 0):,}"
                         f" · uncertain {uncertain:,}")
            else:
                state = "not sent"
            rows.append((issue.slug, state, issue.subject))
    finally:
        if store is not None:
            store.close()
    slug_w = max(len(slug) for slug, _, _ in rows)
    state_w = max(len(state) for _, state, _ in rows)
    for slug, state, subject in rows:
        click.echo(f"{slug:<{slug_w}}  {state:<{state_w}}  {subject}")
    click.echo(f"{len(rows)} issue{'s' * (len(rows) != 1)}; `newsletter status ISSUE` for one issue's "
               "pending count and its uncertain and failed readers")
