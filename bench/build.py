"""build: `newsletter build` of each example issue against the official `mjml` CLI, and
`newsletter --help` wall time.

Ours is the whole process (start Python, read config and YAML, Jinja2 → MJML → HTML →
inlined CSS, text part, web version, write five files). The peer is the npm `mjml` CLI
compiling the very MJML our templates produced, so it does strictly less work: no
templating, no CSS inlining, no text part, one HTML instead of two.
Goal: ours ≤ 0.5 × the peer in CPU time (user+sys; wall time on a shared machine is mostly
the neighbours' load). `newsletter --help` must stay under 150 ms: the reference
beside it is a bare start of the same interpreter, the floor nothing can go under.

    python -m bench build            # or: python -m bench.build
"""

from __future__ import annotations

import shutil

from bench import tools
from bench.harness import (
    BenchError,
    Context,
    Measured,
    Row,
    example_issues,
    interleaved,
    measure,
    median,
    newsletter_cmd,
    project,
    python,
    spread,
)

NAME = "build"
BUILD_GOAL = 0.5
HELP_GOAL_S = 0.150


def run(ctx: Context, *, install: bool = True) -> list[Row]:
    return run_build(ctx, install=install) + run_help(ctx)


def run_build(ctx: Context, *, install: bool = True) -> list[Row]:
    root = project(ctx, "build")
    mjml = tools.mjml_cli(install=install)
    runs = ctx.repeat(7, 1)
    rows = []
    issues = example_issues()[:1] if ctx.tiny else example_issues()
    for issue in issues:
        rel = f"issues/{issue.name}"
        ours_cmd = [*newsletter_cmd(), "build", rel]
        measure(ours_cmd, cwd=root).check(f"newsletter build {rel}")  # warm-up; writes email.mjml
        out_dir = root / "build" / issue.stem
        source = ctx.work / "mjml-input" / f"{issue.stem}.mjml"
        source.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(out_dir / "email.mjml", source)
        target = source.with_suffix(".html")
        peer_cmd = [*mjml, str(source), "-o", str(target)]
        if not ctx.tiny:
            measure(peer_cmd, cwd=root).check("mjml CLI")  # warm-up (disk cache, node's compile cache)

        def ours(cmd: list[str] = ours_cmd) -> Measured:
            return measure(cmd, cwd=root).check("newsletter build")

        def peer(cmd: list[str] = peer_cmd) -> Measured:
            return measure(cmd, cwd=root).check("mjml CLI")

        ctx.log(f"build {issue.name}: {runs} interleaved runs of ours and the mjml CLI")
        ours_m, peer_m = interleaved(runs, ours, peer)
        if not target.exists() or target.stat().st_size < 1000:
            raise BenchError(f"the mjml CLI wrote no HTML for {source}")
        ours_t, peer_t = [m.wall for m in ours_m], [m.wall for m in peer_m]
        cpu_ours, cpu_peer = [m.cpu for m in ours_m], [m.cpu for m in peer_m]
        o, p = median(cpu_ours), median(cpu_peer)
        html_kb = (out_dir / "email.html").stat().st_size / 1024
        rows.append(Row(
            NAME, f"newsletter build {issue.stem}, CPU time (vs mjml CLI {tools.mjml_version()})", o, p, "s",
            goal=f"ratio ≤ {BUILD_GOAL}", met=(o / p) <= BUILD_GOAL,
            note=f"median of {runs} CPU (user+sys); ours {spread(cpu_ours)}, mjml {spread(cpu_peer)}; wall "
                 f"{median(ours_t) * 1000:.0f} vs {median(peer_t) * 1000:.0f} ms "
                 f"({spread(ours_t)} vs {spread(peer_t)}); "
                 f"MJML {source.stat().st_size / 1024:.1f} KB -> email.html {html_kb:.1f} KB",
        ))
    return rows


def run_help(ctx: Context) -> list[Row]:
    runs = ctx.repeat(15, 1)
    root = ctx.work
    root.mkdir(parents=True, exist_ok=True)
    help_cmd = [*newsletter_cmd(), "--help"]
    floor_cmd = [python(), "-c", "pass"]
    measure(help_cmd, cwd=root).check("newsletter --help")
    ctx.log(f"newsletter --help: {runs} runs")
    ours_t, floor_t = interleaved(
        runs,
        lambda: measure(help_cmd, cwd=root).check("newsletter --help").wall,
        lambda: measure(floor_cmd, cwd=root).check("python -c pass").wall,
    )
    o = median(ours_t)
    return [Row(NAME, "newsletter --help wall time (vs bare `python -c pass`)", o, median(floor_t), "s",
                goal=f"< {HELP_GOAL_S * 1000:.0f} ms", met=o < HELP_GOAL_S,
                note=f"median of {runs}; ours {spread(ours_t)}")]


if __name__ == "__main__":
    import sys

    from bench.__main__ import main

    main([NAME, *sys.argv[1:]])  # e.g. python -m bench.smtp --tiny
