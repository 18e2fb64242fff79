"""PNG screenshots of a built email: desktop and phone width, light and dark.

A reviewer would rather look at an issue than read its HTML, so `newsletter screenshot`
renders the email in headless Chromium at 600 px (the theme's width) and 375 px (a phone),
each with `prefers-color-scheme` light and dark, full page. Nothing is fetched: every
image is stood in for by a grey placeholder of the same box, every other request is
refused, so shots are the same offline and on CI, and no tracking pixel ever fires.
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from newsletter.compose.build import SAMPLE_RECIPIENT, Built
from newsletter.deliver.placeholders import Template
from newsletter.errors import NewsletterError

DEFAULT_CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@dataclass(frozen=True)
class Shot:
    name: str
    width: int
    scheme: str  # "light" or "dark"


SHOTS = (Shot("desktop", 600, "light"), Shot("mobile", 375, "light"),
         Shot("desktop-dark", 600, "dark"), Shot("mobile-dark", 375, "dark"))


#: Both ways in: from a package index, and from a checkout (`pip install -e .` left the extra out).
INSTALL_HINT = ("screenshots need Playwright, the `screenshot` extra: pip install 'newsletter[screenshot]', "
                "or in a checkout of newsletter: pip install -e '.[screenshot]'")


class ScreenshotError(NewsletterError):
    """Chromium or Playwright is missing or failed."""


def shots_dir(built: Built) -> Path:
    return built.out_dir / "shots"


def email_for_screens(built: Built) -> str:
    """The HTML part as a reader sees it: per-recipient fields filled with a realistic reader."""
    return Template(built.rendered.html, escape_html=True).fill(SAMPLE_RECIPIENT)


def take_screenshots(built: Built, out_dir: Path | None = None, *, chromium: str | None = None) -> list[Path]:
    """Launch Chromium, write the four PNGs of the issue and of each of its editions (each in its
    own `shots/`: build/<issue>/shots/, build/<issue>/<lang>/shots/), close it. Returns their
    paths. With `out_dir`, the issue itself only, there."""
    try:
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise ScreenshotError(INSTALL_HINT) from None
    executable = chromium or os.environ.get("NEWSLETTER_CHROMIUM") or (
        DEFAULT_CHROMIUM if Path(DEFAULT_CHROMIUM).exists() else None)
    if executable and not Path(executable).exists():
        raise ScreenshotError(f"Chromium not found at {executable} (Debian: apt-get install chromium)")
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
            try:
                if out_dir is not None:
                    return shoot(browser, email_for_screens(built), out_dir)
                return [png for b in built.all() for png in shoot(browser, email_for_screens(b), shots_dir(b))]
            finally:
                browser.close()
    except PlaywrightError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ScreenshotError(f"Chromium failed: {first}") from None


def shoot(browser: Any, html: str, out_dir: Path) -> list[Path]:
    """Write the four shots of `html` with an already running Playwright browser."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    context = browser.new_context(viewport={"width": SHOTS[0].width, "height": 800}, device_scale_factor=1,
                                  java_script_enabled=False)
    try:
        page = context.new_page()
        page.route("**/*", _offline)
        page.set_content(html, wait_until="load")
        for shot in SHOTS:
            page.set_viewport_size({"width": shot.width, "height": 800})
            page.emulate_media(color_scheme=shot.scheme)
            path = out_dir / f"{shot.name}.png"
            tmp = path.with_name(f".{path.name}.tmp")
            page.screenshot(path=str(tmp), full_page=True, type="png")
            os.replace(tmp, path)
            paths.append(path)
    finally:
        context.close()
    return paths


def _offline(route: Any) -> None:
    request = route.request
    if request.url.startswith(("data:", "about:")):
        route.continue_()
    elif request.resource_type == "image":
        route.fulfill(status=200, content_type="image/png", body=placeholder_png())
    else:
        route.abort()


_PLACEHOLDER: bytes | None = None


def placeholder_png(width: int = 600, height: int = 400, grey: int = 0xC8) -> bytes:
    """A plain grey PNG (3:2, like a typical news photo), made with zlib alone."""
    global _PLACEHOLDER
    if _PLACEHOLDER is None:
        row = b"\x00" + bytes([grey, grey, grey]) * width
        raw = zlib.compress(row * height, 9)

        def chunk(kind: bytes, data: bytes) -> bytes:
            return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

        _PLACEHOLDER = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
                        + chunk(b"IDAT", raw) + chunk(b"IEND", b""))
    return _PLACEHOLDER
