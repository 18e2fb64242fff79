"""Torture suite fixtures: scale, figures, and hypothesis settings shared by every test here.

Run alone with `pytest -m torture`; at full size with NEWSLETTER_TORTURE_SCALE=full.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import single_list
from tests.torture import figures


@pytest.fixture
def project(project: Path) -> Path:
    """The example project as a one-list project: the attacks here were written against it, and
    there an unsubscribe is a suppression (the several-lists case has its own tests)."""
    single_list(project)
    return project


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not figures.FIGURES:
        return
    path = figures.write_figures()
    terminalreporter.section("torture figures")
    for line in figures.report_lines():
        terminalreporter.write_line(line)
    terminalreporter.write_line(f"  (written to {path})")
