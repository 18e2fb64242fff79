"""The web version's language switch in real Chromium: at the top of the page, inside a phone's
width, in light and dark, and its link opens the other edition. Screenshots in the test's tmp dir."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, run

pytestmark = pytest.mark.browser

FIDH = "2011-11-28-free-ales-bialiatski"
SITE = f"https://news.example.org/issues/{FIDH}/"

SWITCH_JS = """() => {
  const nav = document.querySelector('nav.nl-languages');
  const box = nav.getBoundingClientRect();
  const link = nav.querySelector('a');
  const style = getComputedStyle(link);
  let under = nav;  // what the text is drawn on: the nearest box with a background colour
  while (under && ['rgba(0, 0, 0, 0)', 'transparent'].includes(getComputedStyle(under).backgroundColor)) {
    under = under.parentElement;
  }
  return {top: box.top, right: box.right, height: box.height, scrollWidth: document.documentElement.scrollWidth,
          label: nav.getAttribute('aria-label'), link: link.textContent, lang: link.lang,
          current: nav.querySelector('[aria-current="page"]').textContent,
          color: style.color, background: getComputedStyle(under || document.body).backgroundColor};
}"""


def _luminance(css: str) -> float:
    r, g, b = (int(x) / 255 for x in css[css.index("(") + 1:css.index(")")].split(",")[:3])
    lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in (r, g, b)]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def test_language_switch_is_visible_and_opens_the_edition(project: Path, browser: Any, tmp_path: Path) -> None:
    shutil.copy(REPO / "tests" / "fixtures" / "i18n" / f"{FIDH}.fr.yaml", project / "issues")
    r = run(["build", f"issues/{FIDH}.yaml"], cwd=project)
    assert r.returncode == 0, r.stderr
    out = project / "build" / FIDH
    pages = {SITE: out / "web.html", SITE + "fr/": out / "fr" / "web.html"}

    def route(req: Any) -> None:
        url = req.request.url
        if url in pages:
            req.fulfill(status=200, content_type="text/html; charset=utf-8", body=pages[url].read_bytes())
        elif url.startswith("data:"):
            req.continue_()
        else:
            req.abort()

    for scheme in ("light", "dark"):
        page = browser.new_page(viewport={"width": 375, "height": 800}, color_scheme=scheme)
        try:
            page.route("**/*", route)
            page.goto(SITE, wait_until="load")
            got = page.evaluate(SWITCH_JS)
            assert got["top"] < 20 and got["height"] >= 24, got  # the first thing on the page, a tappable line
            assert got["right"] <= 375 and got["scrollWidth"] <= 375, got
            named = (got["label"], got["link"], got["lang"], got["current"])
            assert named == ("Languages", "Français", "fr", "English"), got
            lighter, darker = sorted((_luminance(got["color"]), _luminance(got["background"])), reverse=True)
            assert (lighter + 0.05) / (darker + 0.05) >= 4.5, (scheme, got)  # WCAG AA, light and dark
            page.screenshot(path=str(tmp_path / f"web-en-375-{scheme}.png"))
            page.click("nav.nl-languages a")
            page.wait_for_load_state("load")
            assert page.url == SITE + "fr/"
            assert page.evaluate("document.documentElement.lang") == "fr"
            back = page.evaluate(SWITCH_JS)
            assert (back["label"], back["link"], back["current"]) == ("Langues", "English", "Français")
            page.screenshot(path=str(tmp_path / f"web-fr-375-{scheme}.png"))
        finally:
            page.close()
    print(f"screenshots: {tmp_path}")
