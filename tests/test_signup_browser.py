"""The whole signup path in headless Chromium: the form, the confirmation message in the outbox,
the confirm page, then a send that includes the new reader and leaves out a pending one.
Screenshots of the three pages at 375 px and on a desktop."""

from __future__ import annotations

import re
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import pytest

from newsletter.audience.secrets import SigningKeys
from newsletter.config import load_config
from newsletter.store import open_store
from tests.conftest import run
from tests.test_lists import DIGEST, outbox
from tests.webserver import serve_in_thread

pytestmark = pytest.mark.browser

KEY = "signup-browser-secret-0123456789abcdef"
SIZES = {"phone": {"width": 375, "height": 667}, "desktop": {"width": 1280, "height": 800}}


def test_signup_confirm_then_send_in_chromium(project: Path, browser: Any, tmp_path: Path) -> None:
    shots = tmp_path / "screenshots"
    shots.mkdir()
    config = load_config(project / "newsletter.toml")
    (project / "subscribers.example.csv").write_text("email\n")  # the digest's file: nobody, so the store decides
    with serve_in_thread(config, SigningKeys(KEY.encode(), (), False)) as port:
        base = f"http://127.0.0.1:{port}"
        for size, viewport in SIZES.items():
            page = browser.new_page(viewport=viewport)
            try:
                page.goto(f"{base}/subscribe/digest")
                assert page.locator("h1").inner_text() == "Subscribe to Viasna digest"
                box = page.locator("#website").bounding_box()
                assert box is None or box["x"] + box["width"] <= 0  # the honeypot is off-screen for people
                page.screenshot(path=str(shots / f"1-subscribe-{size}.png"), full_page=True)
                reader = f"{size}@example.org"
                page.get_by_label("Email").fill(reader)
                page.get_by_label("Name (optional)").fill(f"Reader on a {size}")
                page.get_by_role("button", name="Subscribe").click()
                page.wait_for_load_state()
                assert page.locator("h1").inner_text() == "Check your inbox"

                eml = config.outbox_dir / "confirm-digest" / f"{reader}.eml"
                message = message_from_bytes(eml.read_bytes(), policy=policy.default)
                link = re.search(r"https://news\.example\.org(/confirm/\S+)",
                                 message.get_body(("plain",)).get_content()).group(1)  # type: ignore[union-attr]
                page.goto(base + link)
                assert page.locator("h1").inner_text() == "Confirm your subscription"
                page.screenshot(path=str(shots / f"2-confirm-{size}.png"), full_page=True)
                with open_store(config) as s:
                    assert s.membership("digest", reader) == "pending"  # opening the link changed nothing
                page.get_by_role("button", name="Yes, subscribe me").click()
                page.wait_for_load_state()
                assert page.locator("h1").inner_text() == "You are subscribed"
                page.screenshot(path=str(shots / f"3-confirmed-{size}.png"), full_page=True)
                width = page.evaluate("document.documentElement.scrollWidth")
                assert width <= viewport["width"], "no sideways scrolling"
            finally:
                page.close()
        # someone who signs up and never confirms
        pending = browser.new_page()
        try:
            pending.goto(f"{base}/subscribe/digest")
            pending.get_by_label("Email").fill("pending@example.org")
            pending.get_by_role("button", name="Subscribe").click()
            pending.wait_for_load_state()
        finally:
            pending.close()
    with open_store(config) as s:
        assert s.membership("digest", "pending@example.org") == "pending"
    r = run(["send", DIGEST, "--yes"], cwd=project, env={"NEWSLETTER_SECRET": KEY})
    assert r.returncode == 0, r.stderr
    got = outbox(project, "2013-12-10-solidarity-with-ales-bialiatski")
    assert sorted(got) == ["desktop@example.org", "phone@example.org"]
    assert str(got["phone@example.org"]["To"]) == "Reader on a phone <phone@example.org>"
    pngs = sorted(p.name for p in shots.iterdir())
    assert len(pngs) == 6
    for png in shots.iterdir():
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5_000
    print(f"\nscreenshots: {shots}")
