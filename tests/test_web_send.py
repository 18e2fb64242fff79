"""End to end: a real send delivers to aiosmtpd, the reader's one-click unsubscribe reaches
the app under uvicorn, and the next send skips them."""

from __future__ import annotations

import re
import shutil
from email.message import EmailMessage
from pathlib import Path

from newsletter.audience.secrets import SigningKeys
from newsletter.config import load_config
from newsletter.store import open_store
from tests.conftest import run, single_list
from tests.sendkit import SLUG, make_project
from tests.smtp_server import SMTPServer
from tests.webserver import one_click, request, serve_in_thread

SECRET = "end-to-end-signing-key-0123456789abcdef"
ENV = {"NEWSLETTER_SECRET": SECRET, "NEWSLETTER_OLD_SECRETS": ""}
KEYS = SigningKeys(SECRET.encode(), (), False)
NEXT = "2011-12-05-next"


def unsubscribe_path(message: EmailMessage, base_url: str) -> str:
    """The https link of List-Unsubscribe, as a path on our server; checked against the footer link."""
    header = str(message["List-Unsubscribe"])
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    url = re.search(r"<(https?://[^>]+)>", header).group(1)  # type: ignore[union-attr]
    html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert f'href="{url}"' in html  # the footer link a person clicks is the same link
    assert url.startswith(base_url + "/unsubscribe/")
    return url[len(base_url):]


def test_one_click_from_a_delivered_message_stops_the_next_send(tmp_path: Path) -> None:
    with SMTPServer() as smtp:
        project = make_project(tmp_path / "project", smtp_port=smtp.port)
        single_list(project)  # one list: an unsubscribe is from everything
        shutil.copy(project / "issues" / f"{SLUG}.yaml", project / "issues" / f"{NEXT}.yaml")
        config = load_config(project / "newsletter.toml")
        first = run(["send", f"issues/{SLUG}.yaml", "--backend", "smtp", "--yes"], project, env=ENV)
        assert first.returncode == 0, first.stderr
        assert smtp.count("ada@example.org") == 1 and smtp.count("marie.curie@example.org") == 1
        ada = unsubscribe_path(smtp.messages("ada@example.org")[0], config.base_url)
        marie = unsubscribe_path(smtp.messages("marie.curie@example.org")[0], config.base_url)

        with serve_in_thread(config, KEYS) as port:
            page = request(port, "GET", marie)  # a scanner or a preview: nothing happens
            assert page.status == 200 and "Se désinscrire" in page.text and "marie.curie@example.org" in page.text
            assert one_click(port, ada).status == 200

        with open_store(config) as store:
            assert store.is_suppressed("ada@example.org") and not store.is_suppressed("marie.curie@example.org")
        smtp.clear()
        second = run(["send", f"issues/{NEXT}.yaml", "--backend", "smtp", "--yes"], project, env=ENV)
        assert second.returncode == 0, second.stderr
        assert smtp.count("ada@example.org") == 0
        assert smtp.count("marie.curie@example.org") == 1 and smtp.count("ales@example.org") == 1
