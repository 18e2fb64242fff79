"""memory: peak RSS of `newsletter send --dry-run` with 1,000,000 subscribers, beside the
same run with 10,000. A dry run reads and validates the whole list, checks suppressions
and the ledger, and counts; if memory is flat the two peaks are nearly equal, and the
ratio shows whether it grows with the list.

Goal: the million-row peak is at most 10,000-row peak + 32 MiB: room for SQLite's page
cache and allocator slack, not for anything per reader (a million readers at 32 bytes
each would already be 30 MiB).

    python -m bench memory          # or: python -m bench.memory
"""

from __future__ import annotations

from bench.data import subscribers_csv
from bench.harness import (
    Context,
    Row,
    example_issues,
    measure,
    median,
    newsletter_cmd,
    project,
)

NAME = "memory"
ALLOWANCE_MIB = 32.0


def run(ctx: Context, *, install: bool = True) -> list[Row]:
    big = ctx.size(1_000_000, 5_000)
    small = ctx.size(10_000, 50)
    issue = example_issues()[0]
    rel = f"issues/{issue.name}"
    root = project(ctx, "memory")
    measure([*newsletter_cmd(), "build", rel], cwd=root).check(f"newsletter build {rel}")
    dry = [*newsletter_cmd(), "send", rel, "--dry-run", "--subscribers"]
    small_csv, big_csv = subscribers_csv(ctx.work / "data", small), subscribers_csv(ctx.work / "data", big)
    ctx.log(f"memory: dry runs of {small:,} (x3) and {big:,} (x1) subscribers")
    small_runs = [measure([*dry, str(small_csv)], cwd=root, rss=True).check("send --dry-run (small)")
                  for _ in range(ctx.repeat(3, 1))]
    big_run = measure([*dry, str(big_csv)], cwd=root, rss=True, timeout=900).check("send --dry-run (big)")
    small_mib = median([(m.peak_rss_kib or 0) / 1024 for m in small_runs])
    big_mib = (big_run.peak_rss_kib or 0) / 1024
    return [Row(NAME, f"send --dry-run peak RSS, {big:,} subscribers (vs {small:,})", big_mib, small_mib, "MiB",
                goal=f"≤ {small:,}-row peak + {ALLOWANCE_MIB:.0f} MiB",
                met=big_mib <= small_mib + ALLOWANCE_MIB,
                note=f"grows by {big_mib - small_mib:.1f} MiB; the {big:,}-row dry run took {big_run.wall:.1f} s "
                     f"({big / big_run.wall:,.0f} rows/s), the {small:,}-row one "
                     f"{median([m.wall for m in small_runs]):.2f} s")]


if __name__ == "__main__":
    import sys

    from bench.__main__ import main

    main([NAME, *sys.argv[1:]])  # e.g. python -m bench.smtp --tiny
