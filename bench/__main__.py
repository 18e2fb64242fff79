"""`python -m bench [NAME...]`: run benchmarks, print the table, write bench/results.json."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
import traceback
from pathlib import Path

from bench import BENCHMARKS
from bench.harness import RESULTS, WORK, BenchError, Context, Row, Skip, table, write_results

TINY_RESULTS = WORK / "results-tiny.json"


def run_one(name: str, ctx: Context, *, install: bool = True) -> list[Row]:
    """Run one benchmark; a missing tool or a failure becomes a row saying so, never a crash."""
    module = importlib.import_module(BENCHMARKS[name])
    try:
        return module.run(ctx, install=install)
    except Skip as e:
        return [Row(name, "skipped", None, note=str(e))]
    except BenchError as e:
        return [Row(name, "ERROR", None, met=False, note=str(e).replace("\n", "\n      "))]
    except Exception as e:  # a bug in a benchmark must not hide the other figures
        tb = traceback.format_exc(limit=4).replace("\n", "\n      ")
        return [Row(name, "ERROR", None, met=False, note=f"{type(e).__name__}: {e}\n      {tb}")]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench/run", description=__doc__)
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"some of: {', '.join(BENCHMARKS)} (default: all)")
    parser.add_argument("--tiny", action="store_true", help="tiny sizes, one run each (what the smoke test does)")
    parser.add_argument("--runs", type=int, help="repetitions per timed figure (default: per benchmark)")
    parser.add_argument("--json", type=Path, help=f"where to write the results (default: {RESULTS}; "
                        f"with --tiny: {TINY_RESULTS})")
    parser.add_argument("--no-install", action="store_true", help="never install npm mjml or Debian postfix")
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    names = args.names or list(BENCHMARKS)
    args.json = args.json or (TINY_RESULTS if args.tiny else RESULTS)
    ctx = Context(tiny=args.tiny, runs=args.runs)
    started = time.time()
    rows: list[Row] = []
    for name in names:
        print(f"== {name}", file=sys.stderr, flush=True)
        t = time.perf_counter()
        got = run_one(name, ctx, install=not args.no_install)
        print(f"   {name} took {time.perf_counter() - t:.1f} s", file=sys.stderr, flush=True)
        rows += got
    print()
    print(table(rows))
    print(f"\ntotal {time.time() - started:.0f} s; results in {args.json}")
    previous = _previous_rows(args.json, keep=[n for n in BENCHMARKS if n not in names]) if not args.tiny else []
    write_results(previous + rows, args.json, started=started,
                  extra={"benchmarks_run": names, "tiny": args.tiny})
    if any(r.figure == "ERROR" for r in rows):
        sys.exit(1)


def _previous_rows(path: Path, keep: list[str]) -> list[Row]:
    """Rows of benchmarks not run this time, kept from the last results so the file stays whole."""
    try:
        doc = json.loads(path.read_text())
        return [Row(**r) for r in doc.get("rows", []) if r.get("bench") in keep]
    except (OSError, ValueError, TypeError):
        return []


if __name__ == "__main__":
    main()
