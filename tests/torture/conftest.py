"""Torture suite fixtures: scale, figures, and hypothesis settings shared by every test here.

Run alone with `pytest -m torture`; at full size with NEWSLETTER_TORTURE_SCALE=full.
"""

from __future__ import annotations

import pytest

from tests.torture import figures


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not figures.FIGURES:
        return
    path = figures.write_figures()
    terminalreporter.section("torture figures")
    for line in figures.report_lines():
        terminalreporter.write_line(line)
    terminalreporter.write_line(f"  (written to {path})")
