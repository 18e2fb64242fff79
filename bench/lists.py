"""lists: the subscriber store's figures, each beside a reference measured in the same run.

- signups/s through `newsletter serve` (POST /subscribe/<list>: input checked, a pending
  membership and its consent record in one transaction, the confirmation message written to
  the outbox), with the state in SQLite and in PostgreSQL; reference: one-click unsubscribes/s
  through the same server (one transaction, no message). Goal >= 300/s each.
- `newsletter subscribers import` of 1,000,000 rows: wall and peak RSS, into SQLite and into
  PostgreSQL; reference: the same CSV read and validated by `send --dry-run` (the reader both
  share). Goal < 60 s, < 200 MiB.
- `newsletter send --backend sendgrid` to a 1,000,000-member list read from the store (no
  CSV); reference: the same send with the readers in a CSV file (`--subscribers`). Goal < 60 s.

    python -m bench lists          # or: python -m bench.lists
"""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from bench.data import subscribers_csv
from bench.harness import (
    SECRET,
    BenchError,
    Context,
    Measured,
    Row,
    Skip,
    bench_env,
    interleaved,
    measure,
    median,
    newsletter_cmd,
    postgres_server,
    project,
    stop,
)

NAME = "lists"
CONNECTIONS = 32
SIGNUP_GOAL = 300.0
IMPORT_WALL_GOAL_S = 60.0
RSS_GOAL_MIB = 200.0
SEND_WALL_GOAL_S = 60.0
SIGNUP = {"per_client_per_hour": 1_000_000}  # the load comes from one client address


def _members(database: str | Path, status: str | None = None) -> int:
    from newsletter.store import open_store, store_exists

    if not store_exists(database):
        return 0
    with open_store(database) as store:
        counts = store.member_counts().get("campaigns", {})
        return counts.get(status, 0) if status else sum(counts.values())


def _signups(ctx: Context, server: Any) -> list[Row]:
    return [_signup_rate(ctx, kind, server.new_database() if kind == "postgresql" else "")
            for kind in ("sqlite", "postgresql")]


def _signup_rate(ctx: Context, kind: str, url: str) -> Row:
    """Signups/s beside one-click unsubscribes/s, through one `serve` with the state in `kind`."""
    from bench.web import _wait, post_all
    from newsletter.audience.secrets import SigningKeys
    from newsletter.audience.tokens import make_token
    from newsletter.config import load_config
    from tests.ports import free_port

    n = ctx.size(3_000, 100)
    runs = ctx.repeat(3, 1)
    root = project(ctx, f"lists-signup-{kind}", {"signup": SIGNUP})
    config = load_config(root / "newsletter.toml")
    database = url or str(config.database)
    keys = SigningKeys(SECRET.encode(), (), False)
    batch = iter(range(2 * runs))
    port = free_port()
    proc = subprocess.Popen([*newsletter_cmd(), "serve", "--port", str(port)], cwd=root,
                            env=bench_env(NEWSLETTER_DATABASE=database),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def signups() -> float:
        i = next(batch)
        items = [("/subscribe/campaigns", urlencode({"email": f"s{i}-{j}@example.org", "name": f"Reader {j}",
                                                     "website": ""}).encode()) for j in range(n)]
        before = _members(database, "pending")
        seconds, statuses = asyncio.run(post_all(port, items))
        written = len(list((root / "outbox" / "confirm-campaigns").glob(f"s{i}-*.eml")))
        if statuses != {200: n} or _members(database, "pending") - before != n or written != n:
            raise BenchError(f"signups ({kind}): {statuses}, {written} confirmations written; expected "
                             f"{n} x 200, {n} pending, {n} messages")
        return n / seconds

    def unsubscribes() -> float:
        i = next(batch)
        body = b"List-Unsubscribe=One-Click"
        items = [(f"/unsubscribe/{make_token(keys, f'u{i}-{j}@example.org', config.list_id)}", body)
                 for j in range(n)]
        seconds, statuses = asyncio.run(post_all(port, items))
        if statuses != {200: n}:
            raise BenchError(f"one-click ({kind}): {statuses}")
        return n / seconds

    try:
        _wait(port, proc, f"newsletter serve ({kind})")
        ctx.log(f"lists signups ({kind}): {n:,} POSTs per run over {CONNECTIONS} connections, {runs} run(s)")
        ours, ref = interleaved(runs, signups, unsubscribes)
    finally:
        stop(proc)
    o, r = median(ours), median(ref)
    return Row(NAME, f"signups/s through serve, state in {kind} (vs one-click unsubscribes/s)", o, r, "/s",
               goal=f">= {SIGNUP_GOAL:,.0f}/s", met=o >= SIGNUP_GOAL,
               note=f"{n:,} POSTs x {runs}, {CONNECTIONS} keep-alive connections; every one pending with its "
                    f"confirmation in the outbox; {min(ours):,.0f}–{max(ours):,.0f}/s")


def _import_and_send(ctx: Context) -> tuple[list[Row], Measured]:
    """The import into SQLite and the two sends; also returns the reference (the CSV read by
    `send --dry-run`), which the PostgreSQL import is set beside too."""
    from bench.sendgrid_api import API_KEY, Server

    n = ctx.size(1_000_000, 2_000)
    csv = subscribers_csv(ctx.work / "data", n)
    issue = "issues/2011-11-28-free-ales-bialiatski.yaml"
    slug = "2011-11-28-free-ales-bialiatski"
    root = project(ctx, "lists-import", top={"subscribers": "empty.csv"})
    (root / "empty.csv").write_text("email\n")  # the list's CSV source: nobody, the store holds the list
    env = bench_env()
    ctx.log(f"lists import: {n:,} rows")
    imp = measure([*newsletter_cmd(), "subscribers", "import", str(csv), "--list", "campaigns"], cwd=root, env=env,
                  rss=True, timeout=1800)
    imp.check("newsletter subscribers import")
    members = _members(root / ".newsletter" / "state.db", "confirmed")
    if members != n:
        raise BenchError(f"import: {members:,} members, expected {n:,}")
    ref = measure([*newsletter_cmd(), "send", issue, "--dry-run", "--subscribers", str(csv)], cwd=root, env=env,
                  rss=True, timeout=1800)
    ref.check("newsletter send --dry-run (reference: reading the same CSV)")
    imp_rss = (imp.peak_rss_kib or 0) / 1024
    rows = [
        Row(NAME, f"subscribers import, {n:,} rows: wall (vs send --dry-run reading the CSV)", imp.wall, ref.wall,
            "s", goal=f"< {IMPORT_WALL_GOAL_S:.0f} s", met=imp.wall < IMPORT_WALL_GOAL_S,
            note=f"one run each; CPU {imp.cpu:.1f} s / {ref.cpu:.1f} s"),
        Row(NAME, f"subscribers import, {n:,} rows: peak RSS (vs send --dry-run)", imp_rss,
            (ref.peak_rss_kib or 0) / 1024, "MiB", goal=f"< {RSS_GOAL_MIB:.0f} MiB", met=imp_rss < RSS_GOAL_MIB),
    ]
    results = {}
    for kind in ("store", "csv"):
        with Server() as server:
            sroot = project(ctx, f"lists-send-{kind}", {"sendgrid": {"host": server.url}},
                            top={"subscribers": "empty.csv"})
            (sroot / "empty.csv").write_text("email\n")
            (sroot / ".newsletter").mkdir()
            (sroot / ".newsletter" / "state.db").write_bytes((root / ".newsletter" / "state.db").read_bytes())
            args = ["--subscribers", str(csv)] if kind == "csv" else []
            if kind == "csv":  # the same readers, from the file only: an empty store
                (sroot / ".newsletter" / "state.db").unlink()
            ctx.log(f"lists send: {n:,} readers from the {kind}")
            m = measure([*newsletter_cmd(), "send", issue, "--backend", "sendgrid", "--yes", *args], cwd=sroot,
                        env=bench_env(SENDGRID_API_KEY=API_KEY), rss=True, timeout=1800)
            got = server.close()
        m.check(f"newsletter send --backend sendgrid (readers from the {kind})")
        if got["accepted"] != n:
            raise BenchError(f"send from the {kind}: {got['accepted']:,} accepted, expected {n:,} ({slug})")
        results[kind] = m
    store, file = results["store"], results["csv"]
    rows.append(Row(NAME, f"send --backend sendgrid to {n:,} members from the store: wall (vs the same from a CSV)",
                    store.wall, file.wall, "s", goal=f"< {SEND_WALL_GOAL_S:.0f} s", met=store.wall < SEND_WALL_GOAL_S,
                    note=f"one run each; peak RSS {(store.peak_rss_kib or 0) / 1024:.0f} MiB (store) / "
                         f"{(file.peak_rss_kib or 0) / 1024:.0f} MiB (CSV)"))
    return rows, ref


def _import_postgres(ctx: Context, server: Any, ref: Measured) -> Row:
    """The same import with the store in PostgreSQL, beside the CSV read alone (`ref`)."""
    n = ctx.size(1_000_000, 2_000)
    csv = subscribers_csv(ctx.work / "data", n)
    root = project(ctx, "lists-import-pg", top={"subscribers": "empty.csv"})
    (root / "empty.csv").write_text("email\n")
    url = server.new_database()
    ctx.log(f"lists import: {n:,} rows into PostgreSQL")
    imp = measure([*newsletter_cmd(), "subscribers", "import", str(csv), "--list", "campaigns"], cwd=root,
                  env=bench_env(NEWSLETTER_DATABASE=url), rss=True, timeout=1800)
    imp.check("newsletter subscribers import (PostgreSQL)")
    if _members(url, "confirmed") != n:
        raise BenchError(f"import into PostgreSQL: {_members(url, 'confirmed'):,} members, expected {n:,}")
    return Row(NAME, f"subscribers import, {n:,} rows into PostgreSQL: wall (vs send --dry-run reading the CSV)",
               imp.wall, ref.wall, "s", goal=f"< {IMPORT_WALL_GOAL_S:.0f} s", met=imp.wall < IMPORT_WALL_GOAL_S,
               note=f"one run each; CPU {imp.cpu:.1f} s / {ref.cpu:.1f} s; peak RSS "
                    f"{(imp.peak_rss_kib or 0) / 1024:.0f} MiB")


def run(ctx: Context, *, install: bool = True) -> list[Row]:
    from tests.pg import remove

    rows, ref = _import_and_send(ctx)
    try:
        server = postgres_server(durable=False)
    except Skip as e:
        ctx.notes.append(f"lists, PostgreSQL figures: {e}")
        return rows
    try:
        rows.append(_import_postgres(ctx, server, ref))
        rows += _signups(ctx, server)
    finally:
        remove(server)
    return rows


if __name__ == "__main__":
    from bench.harness import table

    c = Context()
    print(table(run(c)))
