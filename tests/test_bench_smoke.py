"""Every benchmark in bench/, run at a tiny size, so none of them can rot unnoticed.

Not a speed test: no figure is compared with a goal here (CI machines are too noisy for
that; `bench/run` is where goals are judged). What is checked is that each benchmark
runs end to end against the real tools and produces sane figures: the reference runs,
the counts it asserts hold (messages the sink received, personalizations the SendGrid
stand-in accepted, rows the resumed send touched), every figure is a positive number.
A missing external tool (npm, Postfix) skips its benchmark outside CI only.
"""

from __future__ import annotations

import importlib
import math
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from bench import BENCHMARKS
from bench.harness import Context, Row, Skip, table

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("name", list(BENCHMARKS))
def test_benchmark_runs_at_a_tiny_size(name: str, tmp_path: Path) -> None:
    module = importlib.import_module(BENCHMARKS[name])
    ctx = Context(tiny=True, work=tmp_path, verbose=False)
    # In a thread of its own: Playwright's session-wide browser fixture keeps an event loop
    # running in the main thread once any browser test has run, and benchmarks that drive
    # load with asyncio.run() need a thread without one (test order must not matter).
    try:
        with ThreadPoolExecutor(1) as pool:
            rows: list[Row] = pool.submit(module.run, ctx, install=False).result()
    except Skip as e:
        pytest.skip(str(e))
    assert rows, f"{name} produced no figures"
    print(table(rows))
    for row in rows:
        assert row.bench == name
        assert row.ours is not None and math.isfinite(row.ours) and row.ours > 0, row
        if row.reference is not None:
            assert math.isfinite(row.reference) and row.reference > 0, row
            assert row.ratio is not None and row.ratio > 0, row
        assert row.goal, f"{row.figure}: every figure states its goal"
        assert row.met in (True, False), row
    rendered = table(rows)
    assert all(r.figure in rendered for r in rows)


def test_table_shows_ratio_goal_and_verdict() -> None:
    rows = [Row("x", "speed", 2.0, 4.0, "msg/s", goal="ratio ≥ 0.6", met=False),
            Row("x", "time", 0.05, None, "s", goal="< 150 ms", met=True, note="n runs")]
    text = table(rows)
    header, _, first, second = text.splitlines()[:4]
    assert header.split(" · ")[0].strip() == "figure" and "met?" in header
    assert "0.50" in first and first.rstrip().endswith("NO")
    assert "50 ms" in second and second.rstrip().endswith("yes") and "—" in second
    assert "[x] time: n runs" in text
