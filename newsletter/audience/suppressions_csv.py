"""The suppression list as CSV, so it can be reconciled with an ESP's own suppression export.

Export writes `email,reason,source,detail,created_at`. Import reads that format back, or
an ESP's export (any CSV with an `email` column; a BOM, `;` or tab separators are fine):
every row is checked first, and a file with any bad row imports nothing, naming each
problem with its line. ESP exports carry free-text reasons ("550 5.1.1 user unknown"),
so `--reason` sets the category for every row and keeps their text as the detail.
"""

from __future__ import annotations

import csv
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from newsletter.audience.subscribers import EMAIL_HEADERS, csv_reader, normalise_address, numbered_rows
from newsletter.errors import InputError, Problem
from newsletter.store.db import REASONS, Suppression, email_key

if TYPE_CHECKING:
    from newsletter.store import Store

COLUMNS = ("email", "reason", "source", "detail", "created_at")
MAX_PROBLEMS = 200  # reported one per line; counting goes on past this


@dataclass(frozen=True)
class ImportPlan:
    """Validated rows, ready to apply: (email key, reason, source, detail)."""

    rows: list[tuple[str, str, str, str]]
    duplicates: int  # rows repeating an address earlier in the same file


def write_csv(rows: Iterable[Suppression], out: TextIO) -> int:
    """Write suppressions as CSV; returns how many rows."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    n = 0
    for s in rows:
        writer.writerow((s.email, s.reason, s.source, s.detail, s.created_at))
        n += 1
    return n


def export_csv(store: Store, path: Path) -> int:
    """Write the whole list to `path` atomically (a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            n = write_csv(store.all_suppressions(), f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return n


def read_import(path: Path, *, reason: str | None = None, display: str | None = None) -> ImportPlan:
    """Check every row of `path`; raise InputError naming each bad one (file:line: field: why)."""
    name = display or str(path)
    if reason is not None and reason not in REASONS:
        raise ValueError(f"unknown suppression reason {reason!r}")
    try:
        f = path.open("rb")
    except FileNotFoundError:
        raise InputError([Problem(name, None, "", "file not found")]) from None
    except OSError as e:
        raise InputError([Problem(name, None, "", f"cannot read: {e.strerror}")]) from None
    problems: list[Problem] = []
    rows: list[tuple[str, str, str, str]] = []
    seen: set[str] = set()
    duplicates = 0
    extra = 0
    with f:
        try:
            reader = csv_reader(f, name)
            header = [h.strip().lower() for h in next(reader, [])]
        except csv.Error as e:
            raise InputError([Problem(name, 1, "", f"unreadable header: {e}")]) from None
        email_col = next((i for i, h in enumerate(header) if h in EMAIL_HEADERS), None)
        if email_col is None:
            raise InputError([Problem(name, 1, "", "no 'email' column in the header row")])
        reason_col = header.index("reason") if "reason" in header else None
        detail_col = header.index("detail") if "detail" in header else None
        rows_read = numbered_rows(reader)
        while True:
            try:
                start, row, error = next(rows_read)
            except StopIteration:
                break
            except InputError as e:  # a line that is not UTF-8: reading stops there
                raise InputError([*problems, *e.problems]) from None
            if error is not None:
                problems.append(Problem(name, start, "", f"malformed CSV row: {error}"))
                continue
            if not any(cell.strip() for cell in row):
                continue

            def cell(i: int | None, row: list[str] = row) -> str:
                return row[i].strip() if i is not None and i < len(row) else ""

            raw = cell(email_col)
            found: list[Problem] = []
            try:
                key = email_key(normalise_address(raw)) if raw else ""
                if not key:
                    found.append(Problem(name, start, "email", "no address"))
            except ValueError as e:
                key = ""
                found.append(Problem(name, start, "email", f"not a valid address: {raw!r}: {e}"))
            given = cell(reason_col)
            detail = cell(detail_col)
            if reason is not None:
                category = reason
                detail = detail or given
            elif given.lower() in REASONS:
                category = given.lower()
            elif not given:
                category = "manual"
            else:
                category = ""
                found.append(Problem(name, start, "reason", f"{given!r} is not one of {', '.join(REASONS)} "
                                                            "(use --reason to set one for every row)"))
            if found:
                if len(problems) < MAX_PROBLEMS:
                    problems.extend(found)
                else:
                    extra += 1
                continue
            if key in seen:
                duplicates += 1
                continue
            seen.add(key)
            rows.append((key, category, "import", " ".join(detail.split())[:500] or f"from {path.name}"))
    if extra:
        problems.append(Problem(name, None, "", f"... and {extra} more rows with problems"))
    if problems:
        raise InputError(problems)
    return ImportPlan(rows, duplicates)


def apply_import(store: Store, plan: ImportPlan) -> int:
    """Suppress every planned row in one transaction; returns how many were new."""
    return store.suppress_many(plan.rows)
