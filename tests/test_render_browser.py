"""What a reader sees: the built examples in headless Chromium (Debian chromium, Playwright).

Images live on https://example.org/ and nothing may touch the network, so every request
is intercepted: example.org images get a generated SVG stand-in (so the screenshots show
the layout with pictures in place), anything else is refused and reported.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, run
from tests.test_build import EVERY_BLOCK

EXAMPLES = ("2011-11-28-free-ales-bialiatski", "2013-12-10-solidarity-with-ales-bialiatski")
#: The examples plus an issue with one of every block type (tests/test_build.py).
DOCS = (*EXAMPLES, "every")

pytestmark = pytest.mark.browser

#: Text whose contrast with what is behind it is below WCAG AA (4.5:1), with the colours.
LOW_CONTRAST_JS = """() => {
  const rgb = s => { const m = s.match(/rgba?\\(([^)]+)\\)/); if (!m) return null;
    const p = m[1].split(',').map(Number); return {r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1}; };
  const lum = c => { const f = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(c.r) + 0.7152 * f(c.g) + 0.0722 * f(c.b); };
  const behind = el => { for (let e = el; e; e = e.parentElement) { const cs = getComputedStyle(e);
      if (cs.backgroundImage && cs.backgroundImage !== 'none') return null;
      const c = rgb(cs.backgroundColor); if (c && c.a > 0.5) return c; }
    return {r: 255, g: 255, b: 255}; };
  const bad = [];
  const walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walk.nextNode()) {
    const t = walk.currentNode, el = t.parentElement;
    if (!t.textContent.trim() || !el) continue;
    const cs = getComputedStyle(el), box = el.getBoundingClientRect();
    if (cs.display === 'none' || cs.visibility === 'hidden' || cs.opacity === '0' || box.width < 2 || box.height < 2)
      continue;
    const b = behind(el); if (!b) continue;  // text over a picture (the play button) has its own background
    const c = rgb(cs.color), l1 = lum(c), l2 = lum(b);
    const ratio = (Math.max(l1, l2) + 0.05) / (Math.min(l1, l2) + 0.05);
    if (ratio < 4.5)
      bad.push(`${t.textContent.trim().slice(0, 30)} | ${cs.color} on ${JSON.stringify(b)} = ${ratio.toFixed(2)}`);
  }
  return bad;
}"""


def _stand_in(url: str) -> str:
    hue = int(hashlib.sha256(url.encode()).hexdigest()[:4], 16) % 360
    return ('<svg xmlns="http://www.w3.org/2000/svg" width="640" height="360" viewBox="0 0 640 360">'
            f'<rect width="640" height="360" fill="hsl({hue},35%,40%)"/>'
            '<path d="M0 300 L200 180 L330 270 L460 150 L640 290 L640 360 L0 360Z" fill="rgba(0,0,0,.25)"/></svg>')


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("browser-examples")
    shutil.copy(REPO / "newsletter.toml", root / "newsletter.toml")
    shutil.copytree(REPO / "issues", root / "issues")
    (root / "issues" / "every.yaml").write_text(EVERY_BLOCK)
    r = run(["build", *(f"issues/{slug}.yaml" for slug in DOCS)], cwd=root)
    assert r.returncode == 0, r.stderr
    return root / "build"


TILES_JS = """() => [...document.querySelectorAll('td.nl-play-cell')].map(t => {
  const a = t.getBoundingClientRect(), b = t.querySelector('.nl-play').getBoundingClientRect();
  return {top: Math.round(a.top), left: Math.round(a.left), width: a.width, height: a.height,
          dx: a.left + a.width / 2 - (b.left + b.width / 2), dy: a.top + a.height / 2 - (b.top + b.height / 2)}; })"""

MEASURE_JS = """() => ({
  scrollWidth: document.documentElement.scrollWidth,
  rightmost: Math.max(...[...document.querySelectorAll('body *')].map(e => e.getBoundingClientRect().right)),
  alts: [...document.images].map(i => i.getAttribute('alt') || ''),
  broken: [...document.images].filter(i => !i.complete || !i.naturalWidth).map(i => i.src),
  bodyBackground: getComputedStyle(document.querySelector('.nl-body')).backgroundColor,
})"""

#: (width, colour scheme) of each view of each example; screenshots are taken of all of them.
VIEWS = {"mobile-light": (375, "light"), "desktop-light": (600, "light"), "mobile-dark": (375, "dark"),
         "desktop-dark": (600, "dark"), "wide-light": (700, "light")}


@pytest.fixture(scope="module")
def views(built: Path, browser: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], dict]:
    """Load each example once per view, measure it, screenshot it (PNG) and check its contrast.

    Loading pages is the slow part, so every test below asserts on these measurements.
    """
    shots = tmp_path_factory.mktemp("screenshots")
    refused: list[str] = []

    def route(r: Any) -> None:
        url = r.request.url
        if url.startswith("file:"):
            r.continue_()
        elif url.startswith("https://example.org/"):
            r.fulfill(status=200, content_type="image/svg+xml", body=_stand_in(url))
        else:
            refused.append(url)
            r.abort()

    out: dict[tuple[str, str], dict] = {}
    for slug in DOCS:
        page = browser.new_page(viewport={"width": 600, "height": 900})
        try:
            page.route("**/*", route)
            page.goto((built / slug / "email.html").as_uri(), wait_until="load")
            for view, (width, scheme) in VIEWS.items():
                # resizing and switching the colour scheme re-lay the page out without reloading it
                page.set_viewport_size({"width": width, "height": 900})
                page.emulate_media(color_scheme=scheme)
                data = page.evaluate(MEASURE_JS)
                data["tiles"] = page.evaluate(TILES_JS)
                data["low_contrast"] = page.evaluate(LOW_CONTRAST_JS)
                png = shots / f"{slug}-{view}.png"
                page.screenshot(path=str(png), full_page=True)
                data["png"] = png
                out[slug, view] = data
        finally:
            page.close()
    print(f"\nscreenshots: {shots}")
    assert refused == [], "the email asked for something off example.org"
    return out


@pytest.mark.parametrize("slug", DOCS)
def test_no_horizontal_scroll_on_a_phone(views: dict, slug: str) -> None:
    phone = views[slug, "mobile-light"]
    assert phone["scrollWidth"] <= 375
    assert phone["rightmost"] <= 375


@pytest.mark.parametrize("slug", DOCS)
def test_every_image_has_alt_text_and_loads(views: dict, slug: str) -> None:
    phone = views[slug, "mobile-light"]
    assert phone["alts"] and all(a.strip() for a in phone["alts"])
    assert phone["broken"] == []


def test_video_thumbnails_side_by_side(views: dict) -> None:
    desk = views[EXAMPLES[0], "wide-light"]["tiles"]
    assert len(desk) == 8
    assert len({t["top"] for t in desk[:4]}) == 1, desk  # four in a row at 700 px
    assert desk[4]["top"] > desk[0]["top"] and len({t["top"] for t in desk[4:]}) == 1
    assert [t["left"] for t in desk[:4]] == sorted(t["left"] for t in desk[:4])
    assert all(t["width"] > 100 and t["height"] > 50 for t in desk)
    phone = views[EXAMPLES[0], "mobile-light"]["tiles"]
    assert phone[0]["top"] == phone[1]["top"] < phone[2]["top"] == phone[3]["top"], phone  # two to a row
    assert all(t["width"] > 140 for t in phone)
    # the play button sits over the middle of its thumbnail
    assert all(abs(t["dx"]) < 3 and abs(t["dy"]) < 3 for t in desk + phone)


@pytest.mark.parametrize("slug", DOCS)
@pytest.mark.parametrize("view", ["mobile-light", "desktop-light", "mobile-dark", "desktop-dark"])
def test_text_is_readable_light_and_dark(views: dict, slug: str, view: str) -> None:
    """WCAG AA contrast (4.5:1) for every piece of text, in light and in dark mode."""
    seen = views[slug, view]
    assert (seen["bodyBackground"] == "rgb(15, 15, 15)") == view.endswith("dark")
    assert seen["low_contrast"] == []


def test_screenshots_are_pngs_of_the_right_width(views: dict) -> None:
    for (_, view), seen in views.items():
        data = seen["png"].read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        assert int.from_bytes(data[16:20], "big") == VIEWS[view][0]
        assert int.from_bytes(data[20:24], "big") > 1500  # the whole email, not one screen
