"""The README opens with exactly two commands, and CI runs the second one verbatim."""

from __future__ import annotations

import re

from tests.conftest import REPO


def readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    return re.findall(r"```sh\n(.+?)\n```", text, flags=re.S)[:2]


def test_readme_opens_with_two_commands() -> None:
    text = (REPO / "README.md").read_text()
    first_blocks = re.findall(r"```(\w*)\n(.+?)\n```", text, flags=re.S)
    assert len(first_blocks) >= 2
    for _, body in first_blocks[:2]:
        assert "\n" not in body.strip(), "each quickstart block is one command"
    assert text.index("```") < text.index("\n\n", text.index("# newsletter")) + 3


def test_ci_runs_the_readme_test_command() -> None:
    install_and_run, test = readme_commands()
    assert "pytest" in test and "newsletter build" in install_and_run and "--dry-run" in install_and_run
    ci = (REPO / ".ci/run").read_text().splitlines()
    assert test in ci
