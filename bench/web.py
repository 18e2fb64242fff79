"""web: one-click unsubscribes per second through `newsletter serve` (uvicorn, a signed token
checked, one SQLite transaction per POST), beside the same uvicorn serving a bare Starlette
endpoint that only answers 200 (the ceiling set by the server and this client).

The load comes from an asyncio client in this process: 32 keep-alive connections, every
POST a distinct reader's RFC 8058 one-click body. After each run of ours the benchmark
asserts that every POST got its 200 and the state file holds exactly that many new
suppressions. Runs are interleaved (ours, reference, ours, ...); median of 3.
Goal: ours >= 500 POSTs/s (a storm after a million-reader send is far slower) and >= 30 % of
the bare ceiling (measured on the shared 2-core machine, load ~7: 790-1,080/s, ratio 0.34-0.63).

    python -m bench web           # or: python -m bench.web
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import time
from pathlib import Path

from bench.harness import (
    SECRET,
    BenchError,
    Context,
    Row,
    bench_env,
    interleaved,
    median,
    newsletter_cmd,
    project,
    python,
    stop,
)
from tests.ports import free_port

NAME = "web"
CONNECTIONS = 32
GOAL_RATE = 500.0  # a million-reader send's unsubscribes arrive over hours, not seconds
GOAL_RATIO = 0.3

REFERENCE_APP = '''
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route


async def unsubscribe(request):
    await request.body()
    return PlainTextResponse("ok")


app = Starlette(routes=[Route("/unsubscribe/{token}", unsubscribe, methods=["POST"])])
'''


def _wait(port: int, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            raise BenchError(f"{what} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise BenchError(f"{what} did not start") from None
            time.sleep(0.05)


async def post_all(port: int, items: list[tuple[str, bytes]]) -> tuple[float, dict[int, int]]:
    """POST each (path, urlencoded body) over CONNECTIONS keep-alive connections."""
    queue = list(reversed(items))
    statuses: dict[int, int] = {}

    async def worker() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while queue:
                path, body = queue.pop()
                writer.write(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                             f"application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                             + body)
                status = int((await reader.readline()).split()[1])
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                await reader.readexactly(length)
                statuses[status] = statuses.get(status, 0) + 1
        finally:
            writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONNECTIONS)))
    return time.perf_counter() - start, statuses


async def _load(port: int, paths: list[str]) -> tuple[float, dict[int, int]]:
    """One-click POST every path over CONNECTIONS keep-alive connections; (seconds, status counts)."""
    return await post_all(port, [(path, b"List-Unsubscribe=One-Click") for path in paths])


def run(ctx: Context, *, install: bool = True) -> list[Row]:
    from newsletter.audience.secrets import SigningKeys
    from newsletter.audience.tokens import make_token
    from newsletter.config import load_config

    n = ctx.size(10_000, 300)
    runs = ctx.repeat(3, 1)
    root = project(ctx, NAME)
    (root / "bench_reference_app.py").write_text(REFERENCE_APP)
    config = load_config(root / "newsletter.toml")
    keys = SigningKeys(SECRET.encode(), (), False)
    env = bench_env()
    ours_port, ref_port = free_port(), free_port()
    ours = subprocess.Popen([*newsletter_cmd(), "serve", "--port", str(ours_port)], cwd=root, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ref = subprocess.Popen([python(), "-m", "uvicorn", "bench_reference_app:app", "--port", str(ref_port),
                            "--no-access-log", "--log-level", "warning"], cwd=root,
                           env={**env, "PYTHONPATH": str(root) + os.pathsep + env.get("PYTHONPATH", "")},
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    batch = iter(range(runs))
    try:
        _wait(ours_port, ours, "newsletter serve")
        _wait(ref_port, ref, "the reference uvicorn app")
        ctx.log(f"{n:,} one-click POSTs per run over {CONNECTIONS} connections, {runs} run(s) each")

        def run_ours() -> float:
            i = next(batch)
            paths = [f"/unsubscribe/{make_token(keys, f'web{i}-{j}@example.org', config.list_id)}" for j in range(n)]
            before = _count(config.database)
            seconds, statuses = asyncio.run(_load(ours_port, paths))
            if statuses != {200: n}:
                raise BenchError(f"newsletter serve answered {statuses}, expected {n} x 200")
            if _count(config.database) - before != n:
                raise BenchError(f"{_count(config.database) - before} unsubscribes recorded, expected {n}")
            return n / seconds

        def run_ref() -> float:
            paths = [f"/unsubscribe/ref-{j}" for j in range(n)]
            seconds, statuses = asyncio.run(_load(ref_port, paths))
            if statuses != {200: n}:
                raise BenchError(f"the reference answered {statuses}")
            return n / seconds

        ours_rates, ref_rates = interleaved(runs, run_ours, run_ref)
    finally:
        for proc in (ours, ref):
            stop(proc)
    o, r = median(ours_rates), median(ref_rates)
    ctx.notes.append(f"web: ours {_spread(ours_rates)} POSTs/s, bare uvicorn+Starlette {_spread(ref_rates)}")
    return [Row(NAME, "one-click unsubscribes/s (newsletter serve vs bare uvicorn+Starlette 200)", o, r,
                unit="/s", goal=f">= {GOAL_RATE:,.0f}/s and ratio >= {GOAL_RATIO}",
                met=o >= GOAL_RATE and o / r >= GOAL_RATIO,
                note=f"{n:,} POSTs x {runs}, {CONNECTIONS} keep-alive connections, every one recorded")]


def _spread(values: list[float]) -> str:
    return f"{min(values):,.0f}–{max(values):,.0f}"


def _count(database: Path | str) -> int:
    from newsletter.store import open_store, store_exists

    if not store_exists(database):
        return 0
    with open_store(database) as store:
        # a one-click leaves the token's list: a suppression in a one-list project, a membership
        # `unsubscribed` in one with several (the example project's)
        return store.count("suppressions") + store.count("memberships")


if __name__ == "__main__":
    from bench.harness import table

    c = Context()
    print(table(run(c)))
    for note in c.notes:
        print(note)
