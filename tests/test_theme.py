"""Brandable theme: [theme] in newsletter.toml recolours the default theme without copying a
template, and bad settings are FILE:LINE errors. Screenshots of both examples, each in its
own organisation's colours, are saved under the test's folder (path printed with -s)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from newsletter.compose.markdown import to_html, to_text
from tests.conftest import REPO, run
from tests.tomledit import edit_toml, line_of

FIDH = {"primary": "#b3001b", "accent": "#b3001b", "font": "Helvetica, Arial, sans-serif", "button_shape": "rounded"}
VIASNA = {"primary": "#1d4f91", "accent": "#1d4f91", "text": "#1b1b1b", "font": "Georgia, 'Times New Roman', serif",
          "button_shape": "pill", "logo": "https://example.org/img/viasna-logo.png", "logo_alt": "Viasna"}
LISTS = {"2011-11-28-free-ales-bialiatski": FIDH, "2013-12-10-solidarity-with-ales-bialiatski": VIASNA}


def _project(root: Path, theme: dict[str, str]) -> Path:
    root.mkdir(parents=True)
    shutil.copytree(REPO / "issues", root / "issues")
    shutil.copy(REPO / "newsletter.toml", root / "newsletter.toml")
    edit_toml(root / "newsletter.toml", {f"theme.{k}": v for k, v in theme.items()})
    return root


def _rgb(hex_colour: str) -> str:
    r, g, b = (int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgb({r}, {g}, {b})"


@pytest.mark.browser
def test_each_example_in_its_own_colours(tmp_path: Path, browser: Any) -> None:
    shots = tmp_path / "screenshots"
    shots.mkdir()
    context = browser.new_context()
    context.route("**/*", lambda route: route.abort() if route.request.url.startswith("https://")
                  else route.continue_())
    page = context.new_page()
    try:
        for slug, theme in LISTS.items():
            root = _project(tmp_path / slug, theme)
            if slug == "2013-12-10-solidarity-with-ales-bialiatski":  # the digest has no button: give it one
                with (root / "issues" / f"{slug}.yaml").open("a", encoding="utf-8") as f:
                    f.write('\nlinks:\n  donate: {url: "https://example.org/donate/"}\n')
            r = run(["build", f"issues/{slug}.yaml"], cwd=root)
            assert r.returncode == 0, r.stderr
            page.goto((root / "build" / slug / "email.html").as_uri())
            got = page.evaluate("""() => ({
                masthead: getComputedStyle(document.querySelector('.nl-masthead')).backgroundColor,
                link: getComputedStyle(document.querySelector('.nl-more a')).color,
                font: getComputedStyle(document.querySelector('.nl-md')).fontFamily,
                button: [...document.querySelectorAll('.nl-button td[bgcolor], .nl-button a')].map(
                    e => [getComputedStyle(e).backgroundColor, getComputedStyle(e).borderTopLeftRadius]),
                logo: [...document.querySelectorAll('.nl-masthead img')].map(i => i.alt),
                brand: document.querySelectorAll('.nl-brand').length,
            })""")
            assert got["masthead"] == _rgb(theme["primary"])
            assert got["link"] == _rgb(theme["accent"])
            assert got["font"].split(",")[0].strip("'\"") == theme["font"].split(",")[0].strip("'\"")
            radius = {"rounded": "4px", "pill": "999px", "square": "0px"}[theme["button_shape"]]
            assert got["button"] and all(bg == _rgb(theme["primary"]) and r == radius for bg, r in got["button"])
            if theme.get("logo"):
                assert got["logo"] == [theme["logo_alt"]] and got["brand"] == 0
            else:
                assert got["logo"] == [] and got["brand"] == 1
            for width in (600, 375):
                page.set_viewport_size({"width": width, "height": 900})
                page.screenshot(path=str(shots / f"{slug}-{width}.png"), full_page=True)
    finally:
        context.close()
    assert sorted(p.name for p in shots.iterdir()) == sorted(f"{s}-{w}.png" for s in LISTS for w in (375, 600))
    print(f"\nscreenshots: {shots}")


def test_bad_theme_settings_are_file_line_errors(tmp_path: Path) -> None:
    root = _project(tmp_path / "p", {"primary": "red", "button_shape": "round", "font": "Arial; color: red"})
    r = run(["build", "issues/2011-11-28-free-ales-bialiatski.yaml"], cwd=root)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    errors = r.stderr.strip().splitlines()
    toml = root / "newsletter.toml"
    line = {key: line_of(toml, f"{key} = ", after="[theme]") for key in ("primary", "button_shape", "font")}
    assert errors == [
        f"newsletter.toml:{line['primary']}: theme.primary: 'red' is not valid: a colour as #rrggbb",
        f"newsletter.toml:{line['button_shape']}: theme.button_shape: 'round' is not one of: rounded, square, pill; "
        "did you mean 'rounded'?",
        f"newsletter.toml:{line['font']}: theme.font: 'Arial; color: red' is not valid: a CSS font stack such as "
        "Georgia, serif",
    ]
    assert not (root / "build").exists()


def test_theme_colours_reach_dark_mode_and_check_warns_on_contrast(tmp_path: Path) -> None:
    root = _project(tmp_path / "p", {"primary": "#ffd400", "accent": "#1d4f91"})
    slug = "2011-11-28-free-ales-bialiatski"
    r = run(["build", f"issues/{slug}.yaml"], cwd=root)
    assert r.returncode == 0, r.stderr
    html = (root / "build" / slug / "email.html").read_text()
    assert "background-color:#ffd400" in html.replace(": ", ":")
    assert "#b3001b" not in html, "every theme colour comes from [theme]"
    dark = html[html.index("prefers-color-scheme: dark"):]
    assert re.search(r"\.nl-masthead[^{]*\{background-color: ?#ad9000 !important", dark)  # primary, darker
    c = run(["check", f"issues/{slug}.yaml"], cwd=root)
    warnings = [line for line in c.stdout.splitlines() if "[contrast]" in line]
    assert len(warnings) == 1 and warnings[0].startswith("newsletter.toml:")
    assert "theme.primary: white text on the primary colour" in warnings[0]


def test_gfm_tables_are_email_tables_and_aligned_text() -> None:
    md = ("| Country | Events | Share |\n|:--|--:|:-:|\n| Belgium | 3 | 10 % |\n"
          "| **Argentina** | 12 | [all](https://example.org/a) |\n")
    html = str(to_html(md))
    assert html.startswith('<table class="nl-table" width="100%" cellpadding="6" cellspacing="0" border="0">')
    assert '<th align="right" style="text-align:right">Events</th>' in html
    assert '<td align="center" style="text-align:center"><a href="https://example.org/a">all</a></td>' in html
    assert "|" not in html
    assert to_text(md).splitlines() == [
        "Country    Events             Share",
        "---------  ------  ---------------------------",
        "Belgium         3              10 %",
        "Argentina      12  all (https://example.org/a)",
    ]


def test_every_block_issue_carries_its_table_into_both_parts(project: Path) -> None:
    shutil.copy(REPO / "tests" / "fixtures" / "craft" / "every-block.yaml", project / "issues" / "every-block.yaml")
    r = run(["build", "issues/every-block.yaml"], cwd=project)
    assert r.returncode == 0, r.stderr
    html = (project / "build" / "every-block" / "email.html").read_text()
    text = (project / "build" / "every-block" / "email.txt").read_text()
    assert html.count('class="nl-table"') == 1 and "| Country |" not in html
    assert ("Country    Events  Share\n---------  ------  -----\n"
            "Belgium         3   10 %\nArgentina      12   40 %") in text
