"""Who a list's issue goes to: its CSV source, if it names one, and its confirmed members in the store.

The rule (README, "Lists and subscribers"):

- the list's CSV file (`subscribers = "file.csv"`, for lists kept in a CRM and exported) is
  read as before, row by row; then the list's `confirmed` members in the store who are not
  in the file. So the quickstart's CSV works on a fresh clone (the store is empty), and a
  confirmed signup receives the next issue even when the list also has a CSV source;
- a person in both is sent once, with the file's name and merge fields (the CRM's copy);
- whoever unsubscribed from the list (a membership `unsubscribed` in the store) or is
  suppressed is never mailed, whatever the file says: send.py asks the store per batch;
- pending signups never receive issues;
- `send --subscribers FILE.csv` is a one-off to that file only (the list's unsubscribes and the
  suppressions still apply).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from newsletter.audience.subscribers import (
    Done,
    ReadStats,
    Rejected,
    Subscriber,
    _fingerprint,
    _Seen,
    read_subscribers,
)
from newsletter.store.db import email_key

if TYPE_CHECKING:
    from newsletter.config import Config
    from newsletter.store import Store


def csv_source(config: Config) -> Path | None:
    """The list's CSV source: its `subscribers` setting (or the top level's), else a
    `subscribers.csv` beside newsletter.toml as before; None if there is none (store only)."""
    if config.subscribers_set:
        return config.subscribers
    return config.subscribers if config.subscribers.exists() else None


def describe(csv: Path | None, list_key: str | None, shown: str | None = None) -> str:
    """How the readers' source is named in a plan: `file.csv + store (list)`."""
    parts = [shown or os.fspath(csv)] if csv is not None else []
    if list_key is not None:
        parts.append(f"store ({list_key})")
    return " + ".join(parts) or "nobody"


def read_audience(csv: Path | None, store: Store | None, list_key: str | None, *, default_language: str,
                  stats: ReadStats, display: str | None = None, skip=None,  # noqa: ANN001 - read_subscribers' skip
                  ) -> Iterator[Subscriber | Rejected | Done]:
    """The CSV's rows (as read_subscribers yields them), then the confirmed members of
    `list_key` in `store` who were not in the file, as Subscribers with line 0. Memory stays
    flat: the file's addresses are remembered as 8-byte fingerprints, members are read a page
    at a time."""
    seen = _Seen()
    if csv is not None:
        for row in read_subscribers(csv, default_language=default_language, stats=stats, display=display,
                                    skip=skip):
            if isinstance(row, Subscriber | Done):
                seen.add(_fingerprint(email_key(row.email)))
            yield row
    if store is None or list_key is None:
        return
    for m in store.members(list_key):
        if csv is not None and not seen.add(_fingerprint(email_key(m.email))):
            continue  # in the file as well: its row was used
        stats.rows += 1
        stats.valid += 1
        yield Subscriber(email=m.email, name=m.name, language=(m.language or default_language).lower(),
                         fields=m.fields, line=0)
