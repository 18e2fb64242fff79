"""`newsletter preview`: a real server process, a real Chromium tab that keeps up with the editor."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import NEWSLETTER, run
from tests.ports import free_port

ISSUE = """\
subject: "{subject}"
preheader: What changed this week
date: 2011-11-28
blocks:
  - type: section
    heading: Hello
    body: |
      Dear {{{{ name }}}}, this is the live issue.
list: campaigns
"""


def state(url: str) -> dict:
    with urllib.request.urlopen(url + "state.json", timeout=5) as r:
        return json.loads(r.read())


def wait_for_email(url: str, text: str, seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with urllib.request.urlopen(url + "email.html", timeout=5) as r:
            if text in r.read().decode():
                return True
        time.sleep(0.1)
    return False


@pytest.fixture
def preview_server(project: Path) -> Iterator[tuple[str, subprocess.Popen[str], Path]]:
    issue = project / "issues" / "live.yaml"
    issue.write_text(ISSUE.format(subject="First subject"))
    port = free_port()
    proc = subprocess.Popen([*NEWSLETTER, "preview", "issues/live.yaml", "--port", str(port),
                             "--as", "marie.curie@example.org"],
                            cwd=project, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if state(url)["version"] >= 1:
                    break
            except OSError:
                pass
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "preview did not start"
            time.sleep(0.1)
        yield url, proc, issue
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.browser
def test_preview_follows_the_yaml_and_survives_errors(browser: object, preview_server: tuple) -> None:
    from playwright.sync_api import expect

    url, proc, issue = preview_server
    page = browser.new_page()  # type: ignore[attr-defined]
    try:
        page.goto(url)
        expect(page.locator("#subject")).to_have_text("First subject", timeout=10_000)
        expect(page.locator("#preheader")).to_contain_text("What changed this week")
        expect(page.locator("#to")).to_have_text("marie.curie@example.org")
        # --as fills that subscriber's fields into the email
        expect(page.frame_locator("#frame").locator("body")).to_contain_text("Dear Marie Curie")
        page.evaluate("window.__not_reloaded = true")

        # the editor saves a new subject: the open tab shows it, with no reload by hand
        issue.write_text(ISSUE.format(subject="Second subject"))
        expect(page.locator("#subject")).to_have_text("Second subject", timeout=8_000)
        expect(page.frame_locator("#frame").locator("body")).to_contain_text("Second subject", timeout=8_000)
        assert page.evaluate("window.__not_reloaded") is True

        # broken YAML: the error is in the page, the server is still up, the last good email stays
        issue.write_text('subject: "unterminated\ndate: 2011-11-28\n')
        error = page.locator("#error")
        expect(error).to_be_visible(timeout=8_000)
        expect(error).to_contain_text("issues/live.yaml:")
        expect(error).to_contain_text("malformed YAML")
        assert proc.poll() is None
        assert state(url)["errors"] and state(url)["subject"] == "Second subject"
        expect(page.locator("#subject")).to_have_text("Second subject")

        # fixed again: the error goes away by itself
        issue.write_text(ISSUE.format(subject="Third subject"))
        expect(page.locator("#subject")).to_have_text("Third subject", timeout=8_000)
        expect(error).to_be_hidden()

        # phone width and the text part
        page.click("button[data-mode=phone]")
        assert page.locator("#frame").evaluate("f => f.getBoundingClientRect().width") == 375
        page.click("button[data-mode=text]")
        expect(page.frame_locator("#frame").locator("body")).to_contain_text("Dear Marie Curie", timeout=8_000)
        assert "email.txt" in page.locator("#frame").get_attribute("src")
        assert page.evaluate("window.__not_reloaded") is True

        # the terminal said the same: each build, and the error with its file and line
        proc.terminate()
        _, err = proc.communicate(timeout=10)
        assert "issues/live.yaml:1: malformed YAML: unclosed quote" in err  # where the quote opens
        assert "rebuilt  Third subject" in err
        assert "Traceback" not in err
    finally:
        page.close()


@pytest.mark.browser
def test_preview_rebuilds_when_a_template_changes(preview_server: tuple) -> None:
    url, proc, issue = preview_server
    project = issue.parent.parent
    override = project / "templates" / "blocks" / "section.mjml.j2"
    # the project had no templates folder when the preview started: creating one is noticed
    override.parent.mkdir(parents=True)
    override.write_text('<mj-section><mj-column><mj-text>OVERRIDDEN {{ block.heading }}</mj-text>'
                        '</mj-column></mj-section>\n')
    assert wait_for_email(url, "OVERRIDDEN Hello")
    # and an edit inside it, once it is watched
    override.write_text(override.read_text().replace("OVERRIDDEN", "EDITED"))
    assert wait_for_email(url, "EDITED Hello")
    assert proc.poll() is None


def test_preview_as_unknown_subscriber_is_one_clear_line(project: Path) -> None:
    issue = project / "issues" / "live.yaml"
    issue.write_text(ISSUE.format(subject="First subject"))
    r = run(["preview", "issues/live.yaml", "--port", str(free_port()), "--as", "nobody@example.org"],
            cwd=project, timeout=60)
    assert r.returncode == 1
    assert r.stderr.strip() == ("--as nobody@example.org: no such reader on the list 'campaigns' (FIDH campaign "
                                "news): not in subscribers.example.csv, nor a confirmed member in the store")
