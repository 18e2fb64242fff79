"""postgres: the state in PostgreSQL, each figure beside the same figure with SQLite in the
same run. A server of its own (tests/pg.py's `start_server(durable=True)`: initdb + pg_ctl in
a temporary folder, fsync and full-page writes on, as a real server runs), reached over TCP
on loopback. The parts run in this order, each after a CHECKPOINT, so none is measured while
the server is still writing out the rows of the one before.

- smtp: `send --backend smtp --yes` of 20,000 into Postfix's smtp-sink, a fresh database per
  run vs a fresh SQLite file; interleaved, median of 5. Goal: PostgreSQL >= 0.8 x SQLite.
  Once more with durable commits asked for in the URL (in the notes: the fsync's price).
- web: one-click unsubscribe POSTs/s through `newsletter serve` recording into PostgreSQL,
  beside the same with SQLite; interleaved, median of 3. Goal: >= 500/s.
- sendgrid: `send --backend sendgrid --yes` to 1,000,000 through the real client into the
  stand-in; wall time and peak RSS (GNU time) with the ledger in PostgreSQL, beside SQLite.
  Goals: < 90 s, < 200 MiB.
- status: `newsletter status` of a 1,000,000-row ledger in PostgreSQL (loaded with COPY, then
  VACUUM ANALYZE as autovacuum would soon do), beside the same ledger in SQLite; median of 5.
  Goal: < 1 s.

Every run checks its counts (the sink's counter, the stand-in's personalizations, the
ledger's `sent`, the suppressions recorded).

    python -m bench postgres       # or: python -m bench.postgres
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from bench import tools
from bench.data import subscribers_csv
from bench.harness import (
    SECRET,
    BenchError,
    Context,
    Row,
    Skip,
    bench_env,
    example_issues,
    interleaved,
    measure,
    median,
    newsletter_cmd,
    postgres_server,
    project,
    spread,
    stop,
)

if TYPE_CHECKING:
    from tests.pg import PgServer

NAME = "postgres"
SMTP_RATIO_GOAL = 0.8
SENDGRID_WALL_GOAL_S = 90.0
RSS_GOAL_MIB = 200.0
STATUS_GOAL_S = 1.0
WEB_GOAL = 500.0


def run(ctx: Context, *, install: bool = True) -> list[Row]:
    from tests.pg import remove

    server = postgres_server(durable=True)
    try:
        ctx.log(f"postgres: a durable server on 127.0.0.1:{server.port} ({server.bin})")
        rows: list[Row] = []
        skipped = []
        for part in (_smtp, _web, _sendgrid, _status):
            _settle(server)
            try:
                rows += part(ctx, server.new_database, install)
            except Skip as e:  # e.g. no Postfix: the other figures still count
                skipped.append(f"{part.__name__.strip('_')}: {e}")
                ctx.notes.append(f"postgres {skipped[-1]}")
        if not rows:
            raise Skip("; ".join(skipped))
        return rows
    finally:
        remove(server)


def _settle(server: PgServer) -> None:
    """Each figure on a server that is not still writing out the last one's rows: a CHECKPOINT
    first (the million-row parts left gigabytes of WAL and dirty pages behind them, and the
    one-click figure measured right after them halved: 342/s vs 604/s on a fresh server)."""
    import psycopg

    with psycopg.connect(server.url(), autocommit=True) as conn:
        conn.execute("CHECKPOINT")


def _count(database: str | Path, slug: str | None = None) -> int:
    from newsletter.store import open_store, store_exists

    if not store_exists(database):
        return 0
    with open_store(database) as store:
        # unsubscribes: suppressions (a one-list project) or memberships left (several lists)
        return store.counts(slug)["sent"] if slug else store.count("suppressions") + store.count("memberships")


def _smtp(ctx: Context, new_database: Callable[[], str], install: bool) -> list[Row]:
    from bench.smtp import Sink

    sink_bin, _ = tools.postfix_tools(install=install)
    n = ctx.size(20_000, 200)
    runs = ctx.repeat(5, 1)  # three were too few on a shared 2-core host: runs spread by 30 %
    issue = example_issues()[0]
    rel, slug = f"issues/{issue.name}", issue.stem
    csv = subscribers_csv(ctx.work / "data", n)
    with Sink(sink_bin, ctx.work / "sink") as sink:
        root = project(ctx, "postgres-smtp", {"smtp": {"host": "127.0.0.1", "port": sink.port, "security": "none",
                                                        "connections": 1}})
        measure([*newsletter_cmd(), "build", rel], cwd=root).check(f"newsletter build {rel}")
        cmd = [*newsletter_cmd(), "send", rel, "--backend", "smtp", "--yes", "--subscribers", str(csv)]

        def send(database: str | Path) -> float:
            before = sink.count()
            m = measure(cmd, cwd=root, env=bench_env(NEWSLETTER_DATABASE=str(database)), timeout=900)
            m.check(f"newsletter send --backend smtp (ledger in {database})")
            if sink.count() - before != n or _count(database, slug) != n:
                raise BenchError(f"smtp send with {database}: the sink got {sink.count() - before}, "
                                 f"the ledger has {_count(database, slug)} sent; expected {n}")
            return m.wall

        def sqlite() -> float:
            shutil.rmtree(root / ".newsletter", ignore_errors=True)  # an empty ledger: a first send
            return send(root / ".newsletter" / "state.db")

        ctx.log(f"postgres smtp: {runs} interleaved runs of {n:,} messages, ledger in PostgreSQL / SQLite")
        pg_t, lite_t = interleaved(runs, lambda: send(new_database()), sqlite)
        ctx.log("postgres smtp: once more with durable commits (an fsync per hand-off mark)")
        durable_t = send(new_database() + "?options=-c%20synchronous_commit%3Don")
    pg_rate, lite_rate = n / median(pg_t), n / median(lite_t)
    return [Row(NAME, f"send --backend smtp, {n:,} msgs: ledger in PostgreSQL (vs SQLite)", pg_rate, lite_rate,
                "msg/s", goal=f"ratio ≥ {SMTP_RATIO_GOAL}", met=pg_rate / lite_rate >= SMTP_RATIO_GOAL,
                note=f"median of {runs}; PostgreSQL {min(pg_t):.1f}–{max(pg_t):.1f} s, SQLite "
                     f"{min(lite_t):.1f}–{max(lite_t):.1f} s per run; one commit per message either way "
                     "(PostgreSQL's synchronous_commit=off, SQLite's synchronous=NORMAL). With durable commits "
                     f"(synchronous_commit=on in the URL, an fsync per hand-off mark): {n / durable_t:,.0f} msg/s, "
                     "one run")]


def _sendgrid(ctx: Context, new_database: Callable[[], str], install: bool) -> list[Row]:
    from bench.sendgrid_api import API_KEY, Server

    n = ctx.size(1_000_000, 2_500)
    issue = example_issues()[0]
    rel, slug = f"issues/{issue.name}", issue.stem
    csv = subscribers_csv(ctx.work / "data", n)
    results = {}
    for kind in ("postgresql", "sqlite"):
        with Server() as server:
            root = project(ctx, "postgres-sendgrid", {"sendgrid": {"host": server.url}})
            database = new_database() if kind == "postgresql" else str(root / ".newsletter" / "state.db")
            ctx.log(f"postgres sendgrid: {n:,} recipients, ledger in {kind}")
            m = measure([*newsletter_cmd(), "send", rel, "--backend", "sendgrid", "--yes", "--subscribers", str(csv)],
                        cwd=root, env=bench_env(SENDGRID_API_KEY=API_KEY, NEWSLETTER_DATABASE=database),
                        rss=True, timeout=900)
            got = server.close()
        m.check(f"newsletter send --backend sendgrid (ledger in {kind})")
        if got["accepted"] != n or _count(database, slug) != n:
            raise BenchError(f"sendgrid with {kind}: {got['accepted']:,} accepted, {_count(database, slug):,} "
                             f"sent in the ledger; expected {n:,}")
        results[kind] = m
    pg, lite = results["postgresql"], results["sqlite"]
    pg_rss, lite_rss = (pg.peak_rss_kib or 0) / 1024, (lite.peak_rss_kib or 0) / 1024
    return [
        Row(NAME, f"send --backend sendgrid, {n:,}: wall, ledger in PostgreSQL (vs SQLite)", pg.wall, lite.wall,
            "s", goal=f"< {SENDGRID_WALL_GOAL_S:.0f} s", met=pg.wall < SENDGRID_WALL_GOAL_S,
            note=f"one run each; CPU time {pg.cpu:.1f} s (PostgreSQL) / {lite.cpu:.1f} s (SQLite)"),
        Row(NAME, f"send --backend sendgrid, {n:,}: peak RSS, ledger in PostgreSQL (vs SQLite)", pg_rss, lite_rss,
            "MiB", goal=f"< {RSS_GOAL_MIB:.0f} MiB", met=pg_rss < RSS_GOAL_MIB),
    ]


def _status(ctx: Context, new_database: Callable[[], str], install: bool) -> list[Row]:
    from bench.state import fill_ledger, pristine_ledger
    from newsletter.store import open_store

    total = ctx.size(1_000_000, 3_000)
    issue = example_issues()[0]
    rel, slug = f"issues/{issue.name}", issue.stem
    root = project(ctx, "postgres-status")
    url = new_database()
    ctx.log(f"postgres status: loading a {total:,}-row ledger with COPY")
    with open_store(url) as store:
        fill_ledger(store, slug, total)
    lite = root / ".newsletter" / "state.db"
    lite.parent.mkdir(parents=True)
    shutil.copyfile(pristine_ledger(ctx, slug, total, 0), lite)
    cmd = [*newsletter_cmd(), "status", rel]
    runs = ctx.repeat(5, 1)

    def status(database: str | Path) -> float:
        m = measure(cmd, cwd=root, env=bench_env(NEWSLETTER_DATABASE=str(database))).check(f"status ({database})")
        if f"sent {total:,}" not in m.stdout:
            raise BenchError(f"newsletter status does not show {total:,} sent:\n{m.stdout[-600:]}")
        return m.wall

    pg_t, lite_t = interleaved(runs, lambda: status(url), lambda: status(lite))
    return [Row(NAME, f"status, {total:,} ledger rows in PostgreSQL (vs SQLite)", median(pg_t), median(lite_t), "s",
                goal=f"< {STATUS_GOAL_S:.0f} s", met=median(pg_t) < STATUS_GOAL_S,
                note=f"median of {runs}; PostgreSQL {spread(pg_t)}, SQLite {spread(lite_t)}; whole process")]


def _web(ctx: Context, new_database: Callable[[], str], install: bool) -> list[Row]:
    from bench.web import CONNECTIONS, _load, _wait
    from newsletter.audience.secrets import SigningKeys
    from newsletter.audience.tokens import make_token
    from newsletter.config import load_config
    from tests.ports import free_port

    n = ctx.size(10_000, 300)
    runs = ctx.repeat(3, 1)
    root = project(ctx, "postgres-web")
    config = load_config(root / "newsletter.toml")
    keys = SigningKeys(SECRET.encode(), (), False)
    url, lite = new_database(), str(config.database)
    servers = {}
    batch = iter(range(2 * runs))
    try:
        for database in (url, lite):
            port = free_port()
            proc = subprocess.Popen([*newsletter_cmd(), "serve", "--port", str(port)], cwd=root,
                                    env=bench_env(NEWSLETTER_DATABASE=database),
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            servers[database] = (port, proc)
            _wait(port, proc, f"newsletter serve ({database})")

        def posts(database: str) -> float:
            i = next(batch)
            paths = [f"/unsubscribe/{make_token(keys, f'web{i}-{j}@example.org', config.list_id)}" for j in range(n)]
            before = _count(database)
            seconds, statuses = asyncio.run(_load(servers[database][0], paths))
            if statuses != {200: n} or _count(database) - before != n:
                raise BenchError(f"serve with {database}: {statuses}, {_count(database) - before} recorded; "
                                 f"expected {n} x 200, all recorded")
            return n / seconds

        ctx.log(f"postgres web: {n:,} one-click POSTs per run over {CONNECTIONS} connections, {runs} run(s) each")
        pg_r, lite_r = interleaved(runs, lambda: posts(url), lambda: posts(lite))
    finally:
        for _, proc in servers.values():
            stop(proc)
    o, r = median(pg_r), median(lite_r)
    return [Row(NAME, "one-click unsubscribes/s through serve, PostgreSQL (vs SQLite)", o, r, "/s",
                goal=f">= {WEB_GOAL:,.0f}/s", met=o >= WEB_GOAL,
                note=f"{n:,} POSTs x {runs}, {CONNECTIONS} keep-alive connections, every one recorded; "
                     f"PostgreSQL {min(pg_r):,.0f}–{max(pg_r):,.0f}/s, SQLite {min(lite_r):,.0f}–{max(lite_r):,.0f}/s")]


if __name__ == "__main__":
    import sys

    from bench.__main__ import main

    main([NAME, *sys.argv[1:]])  # e.g. python -m bench.postgres --tiny
