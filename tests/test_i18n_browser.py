"""Right to left in a real browser (Debian Chromium): the Arabic issue and the Arabic unsubscribe
page at 375 px and at desktop width, light and dark, with PNG screenshots (path printed with -s)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from newsletter.audience.secrets import SigningKeys
from newsletter.audience.tokens import make_token
from newsletter.config import load_config
from tests.conftest import REPO, run
from tests.test_render_browser import _stand_in
from tests.webserver import serve_in_thread

pytestmark = pytest.mark.browser

ARABIC = "2013-12-10-solidarity-ar"
VIEWS = {"mobile-light": (375, "light"), "mobile-dark": (375, "dark"),
         "desktop-light": (600, "light"), "desktop-dark": (600, "dark")}

MEASURE_JS = """() => {
  const body = document.querySelector('.nl-body') || document.body;
  const p = [...document.querySelectorAll('.nl-md p')][0];
  const h2 = document.querySelector('.nl-h2');
  const more = [...document.querySelectorAll('.nl-more a')][0];
  const box = el => el.getBoundingClientRect();
  return {
    scrollWidth: document.documentElement.scrollWidth,
    rightmost: Math.max(...[...document.querySelectorAll('body *')].map(e => box(e).right)),
    leftmost: Math.min(...[...document.querySelectorAll('body *')].filter(e => box(e).width > 0).map(e => box(e).left)),
    direction: getComputedStyle(p).direction,
    align: getComputedStyle(p).textAlign,
    // a paragraph's text hugs the right edge of its column: its last line ends there
    gapRight: box(p.parentElement).right - box(p).right,
    h2BarRight: parseFloat(getComputedStyle(h2).borderRightWidth),
    h2BarLeft: parseFloat(getComputedStyle(h2).borderLeftWidth),
    moreText: more.textContent,
    dark: getComputedStyle(body).backgroundColor === 'rgb(15, 15, 15)',
  };
}"""


@pytest.fixture(scope="module")
def arabic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("arabic")
    shutil.copy(REPO / "newsletter.toml", root / "newsletter.toml")
    (root / "issues").mkdir()
    shutil.copy(REPO / "tests" / "fixtures" / "i18n" / f"{ARABIC}.yaml", root / "issues")
    r = run(["build", f"issues/{ARABIC}.yaml"], cwd=root)
    assert r.returncode == 0, r.stderr
    return root


def _route(r: Any) -> None:
    url = r.request.url
    if url.startswith(("file:", "http://127.0.0.1")):
        r.continue_()
    elif url.startswith("https://example.org/"):
        r.fulfill(status=200, content_type="image/svg+xml", body=_stand_in(url))
    else:
        r.abort()


def test_arabic_issue_reads_right_to_left_without_overflow(arabic: Path, browser: Any, tmp_path: Path) -> None:
    shots = tmp_path / "screenshots"
    shots.mkdir()
    page = browser.new_page(viewport={"width": 600, "height": 900})
    seen = {}
    try:
        page.route("**/*", _route)
        for doc in ("email", "web"):
            page.goto((arabic / "build" / ARABIC / f"{doc}.html").as_uri(), wait_until="load")
            assert page.evaluate("document.documentElement.dir") == "rtl"
            assert page.evaluate("document.documentElement.lang") == "ar"
            for view, (width, scheme) in VIEWS.items():
                page.set_viewport_size({"width": width, "height": 900})
                page.emulate_media(color_scheme=scheme)
                data = page.evaluate(MEASURE_JS)
                png = shots / f"{doc}-{view}.png"
                page.screenshot(path=str(png), full_page=True)
                data["png"] = png
                seen[doc, view] = data
    finally:
        page.close()
    print(f"\nscreenshots: {shots}")
    for (doc, view), data in seen.items():
        width = VIEWS[view][0]
        assert data["scrollWidth"] <= width and data["rightmost"] <= width + 0.5, (doc, view, data)
        assert data["leftmost"] >= -0.5, (doc, view, data)
        assert data["direction"] == "rtl" and data["align"] in ("right", "start"), (doc, view, data)
        assert data["h2BarRight"] == 4 and data["h2BarLeft"] == 0
        assert data["moreText"].endswith("\u2190") and data["moreText"].startswith("اقرأ المزيد")
        assert data["dark"] == view.endswith("dark")
        png = data["png"].read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and int.from_bytes(png[16:20], "big") == width
        assert int.from_bytes(png[20:24], "big") > 1200  # the whole email, not one screen


def test_arabic_unsubscribe_page_is_right_to_left(arabic: Path, browser: Any, tmp_path: Path) -> None:
    config = load_config(arabic / "newsletter.toml")
    keys = SigningKeys(b"i18n-browser-test-key-0123456789abcdef", (), False)
    token = make_token(keys, "reader@example.org", config.list_id, "ar")
    with serve_in_thread(config, keys) as port:
        for width, scheme in ((375, "light"), (375, "dark"), (800, "light")):
            page = browser.new_page(viewport={"width": width, "height": 700}, color_scheme=scheme)
            try:
                page.goto(f"http://127.0.0.1:{port}/unsubscribe/{token}")
                assert page.evaluate("[document.documentElement.lang, document.documentElement.dir]") == ["ar", "rtl"]
                assert page.locator("h1").inner_text() == "إلغاء الاشتراك"
                assert "reader@example.org" in page.locator("main").inner_text()
                assert page.evaluate("getComputedStyle(document.querySelector('h1')).direction") == "rtl"
                assert page.evaluate("document.documentElement.scrollWidth") <= width
                page.screenshot(path=str(tmp_path / f"unsubscribe-ar-{width}-{scheme}.png"), full_page=True)
            finally:
                page.close()
    assert len(list(tmp_path.glob("unsubscribe-ar-*.png"))) == 3
