"""state: the ledger at a million rows. `newsletter status`, and a resumed send where
1,000,000 ledger rows are already there, all `sent` but the last 1,000 readers of the list.

The resumed send must touch only the 1,000 (exactly 1,000 messages in the outbox, the
ledger ends with 1,000,000 `sent`) and finish in seconds; its time is printed beside a
fresh send to the same 1,000 readers with an empty ledger. `status` is printed beside
`status` of that small ledger.

The big ledger is written once straight into SQLite (the schema is newsletter.store.db's own,
rows shaped like Ledger's) and copied before each run, since a run changes it.
Goals: status < 1 s; the resumed send < 10 s.

    python -m bench state           # or: python -m bench.state
"""

from __future__ import annotations

import shutil
from pathlib import Path

from bench.data import address, subscribers_csv
from bench.harness import (
    BenchError,
    Context,
    Row,
    example_issues,
    measure,
    median,
    newsletter_cmd,
    project,
    spread,
)

NAME = "state"
STATUS_GOAL_S = 1.0
RESUME_GOAL_S = 10.0


def pristine_ledger(ctx: Context, slug: str, total: int, left: int) -> Path:
    """A state file whose ledger says `sent` for the first total-left readers; built once."""
    from newsletter.store.sqlite import MIGRATIONS

    folder = ctx.work / "state"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"ledger-{slug}-{total}-{left}-v{len(MIGRATIONS)}.db"
    if path.exists():
        return path
    tmp = path.with_suffix(".tmp")
    for p in folder.glob(tmp.name + "*"):
        p.unlink()
    from newsletter.store.sqlite import SqliteStore

    with SqliteStore(tmp, name=str(tmp)) as store:
        fill_ledger(store, slug, total - left)
        store.checkpoint()
    tmp.replace(path)
    return path


def fill_ledger(store: object, slug: str, n: int) -> None:
    """`n` rows `sent`, shaped like the send loop's, in one transaction (COPY in PostgreSQL)."""
    from newsletter.store import email_key, now

    stamp = now()
    rows = ((slug, email_key(address(i)), "sent", "outbox", f"<bench.{i}@example.org>", "", 1, "", "", stamp, stamp)
            for i in range(n))
    with store.transaction():  # type: ignore[attr-defined]
        store.load("ledger", rows)  # type: ignore[attr-defined]
    store.optimize()  # type: ignore[attr-defined]  # as the database's own maintenance would, soon after


def sent_count(database: Path | str, slug: str) -> int:
    from newsletter.store import open_store

    with open_store(database) as store:
        return store.counts(slug)["sent"]


def run(ctx: Context, *, install: bool = True) -> list[Row]:
    total = ctx.size(1_000_000, 3_000)
    left = ctx.size(1_000, 100)
    issue = example_issues()[0]
    slug, rel = issue.stem, f"issues/{issue.name}"
    big_csv = subscribers_csv(ctx.work / "data", total)
    small_csv = subscribers_csv(ctx.work / "data", left, start=total - left)  # the same 1,000 readers
    root = project(ctx, "state", top={"database": ".newsletter/state.db"})
    database = root / ".newsletter" / "state.db"
    measure([*newsletter_cmd(), "build", rel], cwd=root).check(f"newsletter build {rel}")
    ctx.log(f"state: a ledger of {total:,} rows, {total - left:,} sent")
    pristine = pristine_ledger(ctx, slug, total, left)

    def reset(with_ledger: bool) -> None:
        shutil.rmtree(root / ".newsletter", ignore_errors=True)
        shutil.rmtree(root / "outbox", ignore_errors=True)
        if with_ledger:
            database.parent.mkdir(parents=True)
            shutil.copyfile(pristine, database)

    def outbox_count() -> int:
        return sum(1 for _ in (root / "outbox").rglob("*.eml")) if (root / "outbox").exists() else 0

    send = [*newsletter_cmd(), "send", rel, "--backend", "outbox", "--yes", "--subscribers"]
    status = [*newsletter_cmd(), "status", rel]

    # status of the big ledger, and of a small one (the fresh send's) as the reference
    reset(with_ledger=True)
    status_runs = ctx.repeat(5, 1)
    first = measure(status, cwd=root).check("newsletter status (big ledger)")
    if f"{total - left:,}" not in first.stdout and str(total - left) not in first.stdout:
        raise BenchError(f"newsletter status does not show the {total - left:,} sent:\n{first.stdout[-800:]}")
    big_status = [first.wall] + [measure(status, cwd=root).check("newsletter status (big ledger)").wall
                                 for _ in range(status_runs - 1)]
    # as a real project runs it: the million-row list in the config, so `pending` is counted too
    listed = [*status, "--subscribers", str(big_csv)]
    with_list = [measure(listed, cwd=root, timeout=900).check("newsletter status --subscribers (big list)").wall]
    if with_list[0] < 20 and not ctx.tiny:
        with_list += [measure(listed, cwd=root, timeout=900).check("newsletter status --subscribers").wall
                      for _ in range(2)]

    resumed, fresh = [], []
    rounds = ctx.repeat(3, 1)
    for i in range(rounds):
        reset(with_ledger=True)
        m = measure([*send, str(big_csv)], cwd=root, timeout=900).check("resumed newsletter send")
        if outbox_count() != left or sent_count(database, slug) != total:
            raise BenchError(f"resumed send: {outbox_count()} messages written (expected {left}), "
                             f"{sent_count(database, slug):,} sent in the ledger (expected {total:,})")
        resumed.append(m.wall)
        reset(with_ledger=False)
        fresh.append(measure([*send, str(small_csv)], cwd=root).check("fresh newsletter send").wall)
        if outbox_count() != left:
            raise BenchError(f"fresh send: {outbox_count()} messages written, expected {left}")
        if i == 0 and m.wall > 20 and not ctx.runs:
            ctx.log(f"resumed send took {m.wall:.0f} s: not repeating it")
            break
    small_status = [measure(status, cwd=root).check("newsletter status (small ledger)").wall
                    for _ in range(status_runs)]
    s_big, s_small = median(big_status), median(small_status)
    r, f = median(resumed), median(fresh)
    return [
        Row(NAME, f"status, {total:,} ledger rows, no list (vs {left:,} rows)", s_big, s_small, "s",
            goal=f"< {STATUS_GOAL_S:.0f} s", met=s_big < STATUS_GOAL_S,
            note=f"median of {status_runs}; {spread(big_status)}"),
        Row(NAME, f"status --subscribers: {total:,} ledger rows + {total:,}-row list", median(with_list), s_small,
            "s", goal=f"< {STATUS_GOAL_S:.0f} s", met=median(with_list) < STATUS_GOAL_S,
            note=f"median of {len(with_list)}; counting `pending` reads and validates the whole list; "
                 f"reference: status of the {left:,}-row ledger"),
        Row(NAME, f"resumed send, {left:,} left of {total:,} (vs fresh {left:,}-recipient send)", r, f, "s",
            goal=f"< {RESUME_GOAL_S:.0f} s, only the {left:,}", met=r < RESUME_GOAL_S,
            note=f"median of {len(resumed)}; resumed {spread(resumed)}, fresh {spread(fresh)}; "
                 f"outbox got exactly {left:,}, ledger ends with {total:,} sent"),
    ]


if __name__ == "__main__":
    import sys

    from bench.__main__ import main

    main([NAME, *sys.argv[1:]])  # e.g. python -m bench.smtp --tiny
