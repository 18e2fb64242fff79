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


def _shell_commands(text: str) -> list[str]:
    """Every command line of every ```sh and bare ``` block (not yaml, toml, ...), comments stripped."""
    lines: list[str] = []
    fence: str | None = None  # the language of the open block, None outside blocks
    for raw in text.splitlines():
        if raw.startswith("```"):
            fence = raw[3:].strip() if fence is None else None
            continue
        line = raw.split("  #")[0].strip()
        if fence in ("", "sh") and line and not line.startswith("#"):
            lines.append(line)
    return lines


def test_the_quickstart_leaves_newsletter_on_the_path_for_every_later_section() -> None:
    """Item 14: the sections after the quickstart write `newsletter …`, so the quickstart must
    activate the virtualenv it installs into (or every command must say .venv/bin/)."""
    text = (REPO / "README.md").read_text()
    install_and_run, _ = readme_commands()
    steps = [step.strip() for step in install_and_run.split("&&")]
    activate = next(i for i, step in enumerate(steps) if step in (". .venv/bin/activate", "source .venv/bin/activate"))
    install = next(i for i, step in enumerate(steps) if step.startswith("pip install"))
    first_use = next(i for i, step in enumerate(steps) if step.startswith("newsletter "))
    assert steps[0] == "python3 -m venv .venv" and activate < install < first_use
    later = _shell_commands(text[text.index("```", text.index(install_and_run) + len(install_and_run)) + 3:])
    bare = [line for line in later if re.search(r"(^|\s|=\S*\s)newsletter\s", line)]
    assert len(bare) > 10  # the later sections do use the bare command, which is why it must be on PATH
    assert not [line for line in later if ".venv/bin/newsletter" in line]  # one style, not two


def test_the_readme_says_how_to_install_the_screenshot_extra_as_the_error_does() -> None:
    from newsletter.editor.screenshot import INSTALL_HINT

    text = " ".join((REPO / "README.md").read_text().split())
    for command in ("pip install -e '.[screenshot]'", "pip install 'newsletter[screenshot]'"):
        assert command in text and command in INSTALL_HINT
