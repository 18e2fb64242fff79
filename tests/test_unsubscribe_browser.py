"""What a reader sees: headless Chromium opens the unsubscribe link of a message a real send
delivered to aiosmtpd, clicks the button, and sees the confirmation. PNG screenshots of
each page are saved under the test's output folder (path printed with -s)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from newsletter.audience.secrets import SigningKeys
from newsletter.config import load_config
from newsletter.store import open_store
from tests.conftest import run, single_list
from tests.sendkit import SLUG, make_project
from tests.smtp_server import SMTPServer
from tests.webserver import serve_in_thread

pytestmark = pytest.mark.browser

SECRET = "browser-test-signing-key-0123456789abcdef"



def footer_link(smtp: SMTPServer, email: str) -> str:
    """The unsubscribe link in the HTML part of the message `email` received: what a person clicks."""
    (message,) = smtp.messages(email)
    html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    links = re.findall(r'href="(https?://[^"]+/unsubscribe/[^"]+)"', html)
    assert len(set(links)) == 1, links
    return links[0]


def suppressed(database: Path, email: str) -> bool:
    with open_store(database) as store:
        return store.is_suppressed(email)


def test_reader_unsubscribes_in_the_browser(tmp_path: Path, browser: Any) -> None:
    shots = tmp_path / "screenshots"
    shots.mkdir()
    with SMTPServer() as smtp:
        project = make_project(tmp_path / "project", smtp_port=smtp.port)
        single_list(project)  # one list: an unsubscribe is from everything
        sent = run(["send", f"issues/{SLUG}.yaml", "--backend", "smtp", "--yes"], project,
                   env={"NEWSLETTER_SECRET": SECRET, "NEWSLETTER_OLD_SECRETS": ""})
        assert sent.returncode == 0, sent.stderr
        links = {e: footer_link(smtp, e) for e in ("ada@example.org", "marie.curie@example.org")}
    config = load_config(project / "newsletter.toml")

    with serve_in_thread(config, SigningKeys(SECRET.encode(), (), False)) as port:
        local = {e: u.replace(config.base_url, f"http://127.0.0.1:{port}") for e, u in links.items()}
        page = browser.new_page(viewport={"width": 600, "height": 700})
        try:
            # English reader: page, button, confirmation, and back again
            page.goto(local["ada@example.org"])
            assert page.locator("h1").inner_text() == "Unsubscribe"
            assert "ada@example.org" in page.locator("main").inner_text()
            page.screenshot(path=str(shots / "1-unsubscribe-page.png"), full_page=True)
            assert not suppressed(config.database, "ada@example.org")  # opening the page did nothing

            page.get_by_role("button", name="Unsubscribe").click()
            page.wait_for_load_state()
            assert page.locator("h1").inner_text() == "You have been unsubscribed"
            assert "ada@example.org will no longer receive FIDH campaign news." in page.locator("main").inner_text()
            page.screenshot(path=str(shots / "2-confirmation-page.png"), full_page=True)
            assert suppressed(config.database, "ada@example.org")

            page.get_by_role("button", name="Resubscribe").click()
            page.wait_for_load_state()
            assert page.locator("h1").inner_text() == "You are subscribed again"
            page.screenshot(path=str(shots / "3-resubscribed-page.png"), full_page=True)
            assert not suppressed(config.database, "ada@example.org")

            # French reader, on a phone, in dark mode
            phone = browser.new_page(viewport={"width": 375, "height": 667}, color_scheme="dark", locale="fr-FR")
            try:
                phone.goto(local["marie.curie@example.org"])
                phone.screenshot(path=str(shots / "4-page-fr-phone-dark.png"), full_page=True)
                phone.get_by_role("button", name="Se désinscrire").click()
                phone.wait_for_load_state()
                assert phone.locator("h1").inner_text() == "Votre désinscription est confirmée"
                phone.screenshot(path=str(shots / "5-confirmation-fr-phone-dark.png"), full_page=True)
                assert suppressed(config.database, "marie.curie@example.org")
                # a link cut short when copied: the neutral page, in the browser's language
                phone.goto(local["marie.curie@example.org"][:-10])
                assert phone.locator("h1").inner_text() == "Ce lien n’est pas valide"
                phone.screenshot(path=str(shots / "6-invalid-link-phone-dark.png"), full_page=True)
            finally:
                phone.close()
        finally:
            page.close()
    for png in shots.iterdir():
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5_000
    print(f"\nscreenshots: {shots}")
