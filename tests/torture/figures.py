"""Counters the torture suite keeps so its closing note can quote real figures.

Every test adds what it did (faults injected per kind, kills survived, fuzz examples
tried, hostile cases covered, the final accounting of a send) to one process-wide
table; tests/torture/conftest.py prints it at the end of the run and writes it as JSON
to $NEWSLETTER_TORTURE_FIGURES (default: <tmp>/newsletter-torture-figures.json).
"""

from __future__ import annotations

import json
import os
import signal
import tempfile
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hypothesis import HealthCheck, settings

FIGURES: defaultdict[str, Counter[str]] = defaultdict(Counter)


def count(section: str, key: str, n: int = 1) -> None:
    """Add `n` to FIGURES[section][key]."""
    FIGURES[section][key] += n


def scale() -> str:
    """NEWSLETTER_TORTURE_SCALE: 'small' (default, CI) or 'full' (the sizes the issue asks for)."""
    value = os.environ.get("NEWSLETTER_TORTURE_SCALE", "small").strip().lower()
    return "full" if value in ("full", "large", "1") else "small"


def size(small: int, full: int) -> int:
    """`small` in CI, `full` with NEWSLETTER_TORTURE_SCALE=full."""
    return full if scale() == "full" else small


def fuzz_settings(small: int, full: int) -> settings:
    """Hypothesis settings for this suite: example count by scale; hangs caught by `no_hang`."""
    return settings(
        max_examples=size(small, full),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                               HealthCheck.data_too_large, HealthCheck.filter_too_much],
        print_blob=True,
    )


def figures_path() -> Path:
    default = Path(tempfile.gettempdir()) / "newsletter-torture-figures.json"
    return Path(os.environ.get("NEWSLETTER_TORTURE_FIGURES", default))


def report_lines() -> list[str]:
    lines = [f"newsletter torture figures (scale={scale()})"]
    for section in sorted(FIGURES):
        items = ", ".join(f"{k}={v:,}" for k, v in sorted(FIGURES[section].items()))
        lines.append(f"  {section}: {items}")
    return lines


def write_figures() -> Path:
    path = figures_path()
    data = {"scale": scale(), "figures": {s: dict(c) for s, c in sorted(FIGURES.items())}}
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    return path


class Hang(BaseException):  # noqa: N818 - BaseException so product code's `except Exception` cannot swallow it
    """Raised by `no_hang` when the code under test runs past its time limit."""


@contextmanager
def no_hang(seconds: float) -> Iterator[None]:
    """Fail (raise Hang) if the body runs longer than `seconds` of wall time (main thread only)."""

    def alarm(signum: int, frame: object) -> None:
        raise Hang(f"still running after {seconds}s: a hang")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
