"""Outlook parity: every width MRML (mjml-python) writes inside Outlook-only conditional
comments, beside what the reference compiler, npm `mjml` 5, writes for the same MJML.

Outlook desktop lays an email out from those `<!--[if mso | IE]>` tables alone, so a width
that differs there is a layout that differs in Outlook only. For the theme's MJML of each
example issue and of tests/fixtures/craft/every-block.yaml (every block type):

    python -m bench.outlook_widths          # prints one line per issue, then every mismatch

Exit status 1 if any width differs. tests/test_outlook_parity.py runs the same comparison.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench import tools
from bench.harness import REPO, example_issues

EVERY_BLOCK = REPO / "tests" / "fixtures" / "craft" / "every-block.yaml"
_CONDITIONAL = re.compile(r"<!--\[if [^\]]*mso[^\]]*\]>(.*?)<!\[endif\]-->", re.S)
_TAG = re.compile(r"<(table|td|v:[a-z]+)\b([^>]*)>", re.I)


@dataclass(frozen=True)
class Width:
    """One element inside an Outlook conditional comment: its tag, width attribute, CSS width."""

    tag: str
    attribute: str | None
    style: str | None

    def __str__(self) -> str:
        return f"<{self.tag} width={self.attribute} style-width={self.style}>"


def outlook_widths(html: str) -> list[Width]:
    """The widths of every table, cell and VML shape in Outlook-only markup, in document order."""
    out = []
    for block in _CONDITIONAL.findall(html):
        for tag, attrs in _TAG.findall(block):
            attribute = re.search(r'\swidth="([^"]*)"', attrs)
            style = re.search(r'style="[^"]*?(?<![-\w])width:\s*([\d.]+(?:px|%)?)', attrs)
            out.append(Width(tag.lower(), attribute.group(1).removesuffix("px") if attribute else None,
                             style.group(1) if style else None))
    return out


def mrml(mjml: str) -> str:
    from newsletter.compose.render import mjml_to_html

    return mjml_to_html(mjml)


def reference(mjml: str, cli: list[str]) -> str:
    """npm mjml's HTML for the same source (comments kept: Outlook's live in them)."""
    proc = subprocess.run([*cli, "-i", "-s"], input=mjml, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0 or "<html" not in proc.stdout:
        raise RuntimeError(f"npm mjml failed: {proc.stderr[-800:]}")
    return proc.stdout


def theme_mjml(issue: Path) -> str:
    """The MJML the theme renders for an issue, in a copy of the example project."""
    from newsletter.compose.issue import load_issue
    from newsletter.compose.render import render_mjml
    from newsletter.config import load_config

    with tempfile.TemporaryDirectory() as tmp:
        shutil.copy(REPO / "newsletter.toml", Path(tmp) / "newsletter.toml")
        return render_mjml(load_issue(issue), load_config(Path(tmp) / "newsletter.toml"))


def compare(mjml: str, cli: list[str]) -> tuple[list[Width], list[Width], list[tuple[int, Width | None, Width | None]]]:
    """(ours, reference, mismatches as (index, ours, theirs))."""
    ours, theirs = outlook_widths(mrml(mjml)), outlook_widths(reference(mjml, cli))
    bad = [(i, a, b) for i, (a, b) in enumerate(zip(ours, theirs, strict=False)) if a != b]
    if len(ours) != len(theirs):
        n = min(len(ours), len(theirs))
        bad += [(i, ours[i] if i < len(ours) else None, theirs[i] if i < len(theirs) else None)
                for i in range(n, max(len(ours), len(theirs)))]
    return ours, theirs, bad


def main() -> int:
    cli = tools.mjml_cli()
    failed = False
    print(f"Outlook widths: MRML (mjml-python) vs npm mjml {tools.mjml_version()}")
    for issue in [*example_issues(), EVERY_BLOCK]:
        ours, theirs, bad = compare(theme_mjml(issue), cli)
        print(f"{issue.name}: {len(ours)} Outlook widths (npm mjml: {len(theirs)}), {len(bad)} differ")
        for i, a, b in bad:
            print(f"    #{i}: MRML {a}  npm mjml {b}")
        failed |= bool(bad)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
