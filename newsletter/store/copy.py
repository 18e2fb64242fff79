"""`newsletter db copy SRC DST`: move a project's state between two stores (SQLite <-> PostgreSQL).

How a team switches without losing an unsubscribe: every table is copied in one
transaction of the destination, then counted on both sides; a mismatch rolls that table
back. The destination must be empty (its tables, not the database): merging two
histories is not a copy, and refusing is better than guessing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from newsletter.store import TABLES, DatabaseError, Store


class CopyError(DatabaseError):
    """The copy cannot start (destination not empty) or a table's counts differ."""


@dataclass(frozen=True)
class Copied:
    table: str
    rows: int


def copy_store(src: Store, dst: Store, *, progress: Callable[[Copied], None] | None = None) -> list[Copied]:
    """Copy every table of `src` into the empty `dst`, a transaction per table, verifying counts."""
    busy = [f"{t} ({dst.count(t):,} rows)" for t in TABLES if dst.count(t)]
    if busy:
        raise CopyError(f"{dst.name}: not empty: {', '.join(busy)}; nothing copied (copy into a new database)")
    done = []
    for table in TABLES:
        expected = src.count(table)
        with dst.transaction():
            n = dst.load(table, src.dump(table))
            there = dst.count(table)
            if n != expected or there != expected:
                raise CopyError(f"{table}: {expected:,} rows in {src.name} but {there:,} copied to {dst.name}; "
                                "rolled back")
        c = Copied(table, n)
        done.append(c)
        if progress is not None:
            progress(c)
    dst.optimize()
    return done
