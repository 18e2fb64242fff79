"""The final accounting of a send: what the server's own log says against what the ledger says.

For every reader on the list:

- ledger `sent`      -> the server took exactly one copy
- ledger `failed`    -> the server took none, and the ledger carries the server's reason
- ledger `uncertain` -> 0 or 1 copies (the connection died after the message and before
                        the answer); reported, never resent silently
- anything else      -> lost (no row, or a row left `sending` after the run ended)
- 2+ copies          -> duplicated, whatever the ledger says

lost and duplicated must be 0.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Accounting:
    sent: int = 0
    failed: int = 0
    uncertain: int = 0
    uncertain_delivered: int = 0  # of uncertain: the server did have it
    lost: int = 0
    duplicated: int = 0
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, int]:
        return {"sent": self.sent, "failed": self.failed, "uncertain": self.uncertain,
                "uncertain (server had it)": self.uncertain_delivered, "lost": self.lost,
                "duplicated": self.duplicated}

    def problem(self, text: str) -> None:
        if len(self.problems) < 20:
            self.problems.append(text)


def ledger_rows(database: Path, issue: str) -> dict[str, tuple[str, str]]:
    """email -> (status, last_error), read through a separate read-only connection."""
    conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)
    try:
        return {e: (s, err) for e, s, err in conn.execute(
            "SELECT email, status, last_error FROM ledger WHERE issue = ?", (issue,))}
    finally:
        conn.close()


def account(everyone: Iterable[str], delivered: Mapping[str, int] | Counter[str],
            rows: Mapping[str, tuple[str, str]], *, reasons: Mapping[str, str] | None = None) -> Accounting:
    """Compare the server log (`delivered`: address -> copies) with the ledger (`rows`)."""
    a = Accounting()
    everyone = list(everyone)
    listed = set(everyone)
    for address in everyone:
        copies = delivered.get(address, 0)
        status, error = rows.get(address, ("", ""))
        if copies > 1:
            a.duplicated += 1
            a.problem(f"{address}: {copies} copies (ledger: {status})")
        if status == "sent":
            a.sent += 1
            if copies == 0:
                a.lost += 1
                a.problem(f"{address}: ledger says sent, the server never took it")
        elif status == "failed":
            a.failed += 1
            if copies:
                a.problem(f"{address}: ledger says failed, the server took it")
                a.duplicated += copies > 1
            if not error.strip():
                a.problem(f"{address}: failed without a reason")
            elif reasons is not None and address in reasons and "gave up" not in error:
                words = " ".join(reasons[address].split())
                if words not in error:
                    a.problem(f"{address}: failed with {error!r}, the server said {words!r}")
        elif status == "uncertain":
            a.uncertain += 1
            a.uncertain_delivered += copies == 1
        else:
            a.lost += 1
            a.problem(f"{address}: ledger status {status or 'missing'!r} after the run, server copies {copies}")
    strangers = [x for x in delivered if x not in listed]
    if strangers:
        a.problem(f"the server got mail for readers who must not get it (suppressed or unlisted): {strangers[:5]}")
    return a


def suppress_some(database: Path, emails: Iterable[str]) -> set[str]:
    """Put `emails` on the suppression list (as an unsubscribe would): they must never be mailed."""
    from newsletter.store import open_store

    chosen = set(emails)
    with open_store(database) as store:
        store.suppress_many([(e, "unsubscribed", "torture", "") for e in sorted(chosen)])
    return chosen

