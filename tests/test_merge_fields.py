"""Merge fields that cannot misfire: an unknown field is an error in `check`, in the dry run
and in the send's preflight; `{{ field | default("...") }}` gives empty values a fallback."""

from __future__ import annotations

import dataclasses
from email import message_from_bytes, policy
from pathlib import Path

import pytest

from newsletter.audience.secrets import SigningKeys
from newsletter.compose.build import build_issue
from newsletter.config import load_config
from newsletter.deliver.backends import get_backend
from newsletter.deliver.message import make_recipient, prepare_message
from newsletter.deliver.placeholders import PLACEHOLDER, Template, protect, restore
from tests.conftest import run
from tests.sendgrid_server import SendGridServer

ISSUE = "issues/2011-11-28-free-ales-bialiatski.yaml"
FIRST_BODY = "      Ales Bialiatski, FIDH Vice-President and President"
KEYS = SigningKeys(b"fields-test-key-0123456789abcdef", (), False)


def _edit_issue(project: Path, text: str) -> int:
    """Put `text` at the start of the first block's body; return its line in the YAML."""
    path = project / ISSUE
    lines = path.read_text().splitlines()
    n = next(i for i, line in enumerate(lines) if line.startswith(FIRST_BODY))
    lines[n] = "      " + text + " " + lines[n].lstrip()
    path.write_text("\n".join(lines) + "\n")
    return n + 1


def test_check_reports_a_misspelt_field_as_an_error_with_its_line_and_the_columns(project: Path) -> None:
    line = _edit_issue(project, "Dear {{ nmae }},")
    r = run(["check", ISSUE], cwd=project)
    assert r.returncode == 1, r.stdout + r.stderr
    expected = (f"{ISSUE}:{line}: error: {{{{ nmae }}}} is neither a standard field (name, email, unsubscribe_url) "
                "nor a column of subscribers.example.csv (its columns: email, name, language, city)")
    assert expected in r.stdout


def test_a_column_of_the_list_and_a_standard_field_are_fine(project: Path) -> None:
    _edit_issue(project, "Dear {{ name }} from {{ city | default('your town') }},")
    r = run(["check", ISSUE], cwd=project)
    assert "merge-field" not in r.stdout, r.stdout


def test_without_any_list_it_is_a_warning_as_in_build(project: Path) -> None:
    _edit_issue(project, "Dear {{ nmae }},")
    (project / "subscribers.example.csv").unlink()
    r = run(["check", ISSUE], cwd=project)
    hits = [line for line in r.stdout.splitlines() if "[merge-field]" in line]
    assert len(hits) == 1 and ": warning: {{ nmae }}" in hits[0], r.stdout
    b = run(["build", ISSUE], cwd=project)
    assert b.returncode == 0 and "nmae" in b.stdout + b.stderr


def test_dry_run_and_send_refuse_even_with_force_and_send_nothing(project: Path) -> None:
    line = _edit_issue(project, "Dear {{ nmae }},")
    dry = run(["send", ISSUE, "--dry-run"], cwd=project)
    assert dry.returncode == 1, dry.stdout + dry.stderr
    assert f"{ISSUE}:{line}: {{{{ nmae }}}}: neither a standard field" in dry.stderr
    assert "its columns: email, name, language, city" in dry.stderr
    assert "Traceback" not in dry.stderr
    forced = run(["send", ISSUE, "--yes", "--force"], cwd=project)
    assert forced.returncode == 1
    assert f"{ISSUE}:{line}: {{{{ nmae }}}}: neither a standard field" in forced.stderr
    assert not (project / "outbox").exists() and not (project / ".newsletter").exists()


def test_the_list_being_sent_decides_not_the_configured_one(project: Path) -> None:
    _edit_issue(project, "Hello {{ team }},")
    (project / "staff.csv").write_text("email,team\nada@example.org,ops\n")
    assert run(["send", ISSUE, "--dry-run"], cwd=project).returncode == 1
    ok = run(["send", ISSUE, "--dry-run", "--subscribers", "staff.csv"], cwd=project)
    assert ok.returncode == 0, ok.stderr
    sample = next((project / "build").rglob("samples/*.eml"))
    assert "Hello ops," in message_from_bytes(sample.read_bytes(), policy=policy.default) \
        .get_body(("plain",)).get_content()


# --- fallbacks -------------------------------------------------------------------------


def test_placeholder_syntax_with_fallbacks() -> None:
    text = 'a {{ name | default("friend") }} b {{city|default(&#34;your town&#34;)}} c {{ email }}'
    assert PLACEHOLDER.findall(text) == ["name", "city", "email"]
    canonical = "a {{ name | default('friend') }} b {{ city | default('your town') }} c {{ email }}"
    assert restore(protect(text)) == canonical
    t = Template(text, escape_html=True)
    assert t.fill({"name": "", "city": "Minsk & co", "email": "x@y"}) == "a friend b Minsk &amp; co c x@y"
    assert Template("{{ name }}").fill({"name": "", "name:default": "reader"}) == "reader"
    assert Template("{{ name | default('you') }}").fill({"name": "", "name:default": "reader"}) == "you"


@pytest.fixture
def fallback_built(project: Path):  # noqa: ANN201
    _edit_issue(project, "Dear {{ name | default(\"friend\") }} from {{ city | default('your town') }},")
    config = load_config(project / "newsletter.toml")
    return build_issue(project / ISSUE, config, write=False)


def _readers(built):  # noqa: ANN001, ANN202
    def one(email: str, name: str, city: str):  # noqa: ANN202
        return make_recipient(email=email, name=name, language="en", fields={"city": city}, slug=built.slug,
                              config=built.config, keys=KEYS, fallback_name="reader")
    return one("a@example.org", "", ""), one("b@example.org", "Bo", "Minsk")


def test_fallbacks_fill_both_parts_of_the_mime_message(fallback_built) -> None:  # noqa: ANN001
    empty, full = _readers(fallback_built)
    message = prepare_message(fallback_built)
    for r, words in ((empty, "Dear friend from your town,"), (full, "Dear Bo from Minsk,")):
        msg = message_from_bytes(message.to_bytes(r), policy=policy.default)
        assert words in " ".join(msg.get_body(("plain",)).get_content().split())
        assert words in " ".join(msg.get_body(("html",)).get_content().split())


def test_fallbacks_fill_sendgrid_substitutions(fallback_built, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    empty, full = _readers(fallback_built)
    monkeypatch.setenv("SENDGRID_API_KEY", "SG.fields-key")
    with SendGridServer(api_key="SG.fields-key") as sg:
        config = dataclasses.replace(fallback_built.config, sendgrid={"host": sg.url, "timeout": 10})
        with get_backend("sendgrid", config) as backend:
            backend.open(prepare_message(fallback_built))
            assert [o.status for o in backend.send_messages([empty, full])] == ["sent", "sent"]
        for email, words in (("a@example.org", "Dear friend from your town,"),
                             ("b@example.org", "Dear Bo from Minsk,")):
            got = sg.render(email)
            for part in ("text", "html"):
                assert words in " ".join(got[part].split()), (email, part)
