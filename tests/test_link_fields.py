"""A subscriber value filled into a link must pass the literal-link rule, per reader, in every backend.

`[site]({{ website }})` in an issue makes each reader's `website` column the href itself.
A value such as `javascript:alert(1)` (any case), `vbscript:` or `data:` must never reach an
href: that reader is not sent (one `failed` line naming the column), in the outbox, SMTP and
SendGrid alike, and the others get their own link in both parts.
"""

from __future__ import annotations

import csv
import dataclasses
import os
import sqlite3
from collections.abc import Iterator
from email import message_from_bytes, policy
from pathlib import Path

import pytest

from newsletter.audience.secrets import SigningKeys
from newsletter.compose.build import Built, build_issue
from newsletter.config import load_config
from newsletter.deliver.backends import Backend, get_backend
from newsletter.deliver.send import SendOptions, make_plan, send_issue
from newsletter.store import open_store
from tests.conftest import run
from tests.sendgrid_server import SendGridServer
from tests.sendkit import SLUG, make_project
from tests.smtp_server import SMTPServer

KEYS = SigningKeys(b"links-test-key-0123456789abcdef", (), False)
GOOD = {"good@example.org": "https://good.example.net/page", "mail@example.org": "mailto:me@example.net"}
BAD = {"js@example.org": "JavaScript:alert(1)", "space@example.org": " javascript:alert(2)",
       "vb@example.org": "vbscript:msgbox(1)", "data@example.org": "data:text/html,<b>x</b>",
       "rel@example.org": "/relative/path"}


@pytest.fixture
def proj(tmp_path: Path) -> Path:
    root = make_project(tmp_path / "p")
    issue = root / "issues" / f"{SLUG}.yaml"
    issue.write_text(issue.read_text().replace("Écrivez-lui.", "Écrivez-lui. [Your page]({{ website }})."))
    with (root / "subscribers.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["email", "name", "language", "city", "website"])
        for email, url in {**GOOD, **BAD, "empty@example.org": ""}.items():
            w.writerow([email, "R", "en", "Minsk", url])
    return root


def _built(root: Path) -> Built:
    return build_issue(root / "issues" / f"{SLUG}.yaml", load_config(root / "newsletter.toml"), write=False)


class Stand:
    """A backend and what its real stand-in received: {email: (html, text)}."""

    def __init__(self, name: str, built: Built):
        self.name, self.built = name, built

    def __enter__(self) -> Stand:
        config = self.built.config
        if self.name == "smtp":
            self.server = SMTPServer().start()
            self.backend: Backend = get_backend("smtp", config, host=self.server.host, port=self.server.port)
        elif self.name == "sendgrid":
            self.saved = os.environ.get("SENDGRID_API_KEY")
            os.environ["SENDGRID_API_KEY"] = "SG.links-key"
            self.server = SendGridServer(api_key="SG.links-key").start()
            config = dataclasses.replace(config, sendgrid={"host": self.server.url, "timeout": 10})
            self.backend = get_backend("sendgrid", config)
        else:
            self.backend = get_backend("outbox", config)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.name == "smtp":
            self.server.stop()
        elif self.name == "sendgrid":
            self.server.stop()
            if self.saved is None:
                os.environ.pop("SENDGRID_API_KEY", None)
            else:
                os.environ["SENDGRID_API_KEY"] = self.saved

    def received(self) -> dict[str, tuple[str, str]]:
        if self.name == "sendgrid":
            return {e.lower(): (m["html"], m["text"]) for e in self.server.count_by_email()
                    for m in [self.server.render(e)]}
        if self.name == "smtp":
            msgs = {e: self.server.messages(e)[0] for e in self.server.counts()}
        else:
            msgs = {}
            for f in (self.built.config.outbox_dir / SLUG).glob("*.eml"):
                m = message_from_bytes(f.read_bytes(), policy=policy.default)
                msgs[m["To"].addresses[0].addr_spec] = m
        return {e.lower(): (m.get_body(("html",)).get_content(), m.get_body(("plain",)).get_content())
                for e, m in msgs.items()}


@pytest.fixture(params=["outbox", "smtp", "sendgrid"])
def stand(request: pytest.FixtureRequest, proj: Path) -> Iterator[Stand]:
    with Stand(request.param, _built(proj)) as s:
        yield s


def test_bad_link_values_fail_per_reader_and_never_reach_an_href(stand: Stand, proj: Path) -> None:
    store = open_store(stand.built.config.database)
    try:
        report = send_issue(stand.built, SendOptions(stand.backend), proj / "subscribers.csv", store, keys=KEYS)
    finally:
        store.close()
    assert (report.sent, report.failed) == (len(GOOD) + 1, len(BAD))
    failed = {o.email: o for o in report.failures}
    assert set(failed) == set(BAD)
    for o in failed.values():
        assert "the 'website' value is used as a link" in o.detail and not o.retryable
    got = stand.received()
    assert set(got) == {*GOOD, "empty@example.org"}, "refused readers get nothing, in any backend"
    for email, url in GOOD.items():
        html, text = got[email]
        assert f'href="{url}"' in html and url in text
    everything = " ".join(h + t for h, t in got.values()).lower()
    assert "javascript:" not in everything and "vbscript:" not in everything and "data:text" not in everything
    ledger = dict(sqlite3.connect(proj / ".newsletter" / "state.db").execute("SELECT email, status FROM ledger"))
    assert {e for e, s in ledger.items() if s == "failed"} == set(BAD)


def test_the_plan_and_the_dry_run_count_them_and_write_no_sample_of_them(proj: Path) -> None:
    plan = make_plan(_built(proj), proj / "subscribers.csv", None, samples=10)
    assert (plan.to_send, plan.bad_link_count) == (len(GOOD) + 1, len(BAD))
    r = run(["send", f"issues/{SLUG}.yaml", "--dry-run"], cwd=proj)
    assert r.returncode == 0, r.stderr
    assert "bad link" in r.stdout and "(lines 4, 5, 6, 7, 8)" in r.stdout
    samples = " ".join(p.name for p in (proj / "build" / SLUG / "samples").glob("*.eml"))
    assert not any(e in samples for e in BAD)


def test_check_accepts_a_field_as_a_link_but_not_a_bad_fallback(proj: Path) -> None:
    ok = run(["check", f"issues/{SLUG}.yaml"], cwd=proj)
    assert "merge-field" not in ok.stdout, ok.stdout
    issue = proj / "issues" / f"{SLUG}.yaml"
    issue.write_text(issue.read_text().replace("({{ website }})", "({{ website | default('javascript:x') }})"))
    bad = run(["check", f"issues/{SLUG}.yaml"], cwd=proj)
    assert bad.returncode == 1
    assert "the fallback of {{ website }} is used as a link: 'javascript:x': scheme 'javascript' not allowed" \
        in bad.stdout, bad.stdout
