"""Outlook parity: the widths MRML writes into Outlook-only markup equal npm mjml 5's.

Compiles the theme's MJML of both examples and of an issue with every block type with both
compilers (bench/outlook_widths.py; npm mjml is installed into bench/.work as bench/ does).
"""

from __future__ import annotations

import pytest

from bench import outlook_widths
from bench.harness import BenchError, Skip, example_issues


@pytest.fixture(scope="module")
def mjml_cli() -> list[str]:
    from bench import tools

    try:
        return tools.mjml_cli(install=True)
    except Skip as e:
        pytest.skip(str(e))
    except BenchError as e:
        pytest.fail(str(e))


@pytest.mark.parametrize("issue", [*example_issues(), outlook_widths.EVERY_BLOCK], ids=lambda p: p.stem)
def test_outlook_widths_equal_npm_mjml(mjml_cli: list[str], issue: object) -> None:
    ours, theirs, bad = outlook_widths.compare(outlook_widths.theme_mjml(issue), mjml_cli)  # type: ignore[arg-type]
    assert len(ours) > 20
    assert [f"#{i}: MRML {a} npm {b}" for i, a, b in bad] == []


def test_the_comparison_sees_a_difference(mjml_cli: list[str]) -> None:
    """The case MRML gets wrong (a % group in a padded section), so the test above can fail."""
    mjml = """<mjml><mj-body width="600px"><mj-section padding="0 20px"><mj-group width="50%">
      <mj-column width="50%" padding="4px"><mj-text>a</mj-text></mj-column>
      <mj-column width="50%" padding="4px"><mj-text>b</mj-text></mj-column>
    </mj-group></mj-section></mj-body></mjml>"""
    _, _, bad = outlook_widths.compare(mjml, mjml_cli)
    assert {(a.style, b.style) for _, a, b in bad if a and b} >= {("300px", "280px")}


def test_links_inside_cells_and_bulletproof_buttons() -> None:
    """A link around a table is not clickable in Outlook desktop: links sit on images or in cells.
    Buttons are coloured by their cell (bgcolor) and padded for Word by mso-padding-alt."""
    import re

    from newsletter.compose.render import mjml_to_html

    for issue in [*example_issues(), outlook_widths.EVERY_BLOCK]:
        html = mjml_to_html(outlook_widths.theme_mjml(issue))
        assert not re.search(r"<a\b[^>]*>\s*<table", html), issue.name
        tiles = re.findall(r'<v:rect[^>]*style="width:(\d+)px', html)
        assert all(w == "132" for w in tiles), "the VML tile is as wide as the tile in Chromium"
        buttons = re.findall(r'<td[^>]*bgcolor="#[0-9a-f]{6}"[^>]*style="[^"]*mso-padding-alt:12px 28px[^"]*"[^>]*>'
                             r'\s*<a [^>]*style="[^"]*mso-padding-alt:0px', html)
        assert len(buttons) == html.count('class="nl-button'), issue.name
    assert tiles and buttons  # the every-block issue has both
