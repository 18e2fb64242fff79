"""The spliced MIME message: parsed back with the stdlib, it must say exactly what was meant."""

from __future__ import annotations

import re
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from newsletter.audience.secrets import SigningKeys
from newsletter.audience.tokens import read_token
from newsletter.config import load_config
from newsletter.deliver.message import PreparedMessage, Recipient, make_recipient
from newsletter.deliver.placeholders import Template
from newsletter.errors import InputError
from tests.conftest import REPO

KEYS = SigningKeys(b"k" * 32, (), False)
CONFIG = load_config(REPO / "newsletter.toml")


def prepared(subject: str = "Free Ales Bialiatski", html: str = "<p>Dear {{ name }}</p>"
             '<a href="{{ unsubscribe_url }}">unsubscribe</a>',
             text: str = "Dear {{ name }}\nUnsubscribe: {{ unsubscribe_url }}\n") -> PreparedMessage:
    return PreparedMessage(issue_slug="2011-11-28-x", subject=subject, html=html, text=text,
                           from_name="FIDH — Paris", from_email="newsletter@example.org",
                           reply_to="contact@example.org",
                           list_id="FIDH campaign news <campaigns.news.example.org>",
                           headers={"X-Newsletter-Issue": "2011-11-28-x"})


def recipient(email: str = "ales@example.org", name: str = "Aleś Bialiacki", **fields: str) -> Recipient:
    return make_recipient(email=email, name=name, language="en", fields=fields, slug="2011-11-28-x",
                          config=CONFIG, keys=KEYS, fallback_name="reader")


def parse(data: bytes) -> EmailMessage:
    return message_from_bytes(data, policy=policy.default)  # type: ignore[return-value]


def bodies(msg: EmailMessage) -> tuple[str, str]:
    text, html = list(msg.iter_parts())
    return (text.get_content().replace("\r\n", "\n"), html.get_content().replace("\r\n", "\n"))


def test_headers_parts_and_unsubscribe_link() -> None:
    m = prepared()
    r = recipient()
    data = m.to_bytes(r)
    assert data.isascii(), "7-bit clean: no relay needs 8BITMIME or SMTPUTF8"
    assert b"\n" not in data.replace(b"\r\n", b""), "CRLF line ends only"
    assert max(len(line) for line in data.split(b"\r\n")) <= 998
    msg = parse(data)
    assert msg.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
    assert all(p.get_content_charset() == "utf-8" for p in msg.iter_parts())
    assert msg["To"].addresses[0].display_name == "Aleś Bialiacki"
    assert msg["To"].addresses[0].addr_spec == "ales@example.org"
    assert msg["From"].addresses[0].display_name == "FIDH — Paris"
    assert msg["Subject"] == "Free Ales Bialiatski"
    assert msg["Date"].datetime is not None and msg["Date"].datetime.tzinfo is not None
    assert msg["List-Id"] == "FIDH campaign news <campaigns.news.example.org>"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg["Message-ID"] == r.message_id
    urls = re.findall(r"<([^>]+)>", str(msg["List-Unsubscribe"]))
    assert urls[0].startswith("https://news.example.org/unsubscribe/")
    assert urls[1].startswith("mailto:unsubscribe@example.org?subject=unsubscribe%20")
    token = urls[0].rsplit("/", 1)[1]
    data_back = read_token(KEYS, token, list_id=CONFIG.list_id)
    assert data_back.email == "ales@example.org"
    text, html = bodies(msg)
    assert f'href="{urls[0]}"' in html, "the footer link is the header's link"
    assert urls[0] in text
    assert "Dear Aleś Bialiacki" in text and "Dear Aleś Bialiacki" in html


def test_message_ids_are_unique_per_reader_and_stable_across_runs() -> None:
    ids = {recipient(email=f"r{i}@example.org").message_id for i in range(200)}
    assert len(ids) == 200
    assert recipient().message_id == recipient().message_id
    assert re.fullmatch(r"<[^<>@\s]+@example\.org>", recipient().message_id)


def test_non_ascii_subject_with_a_merge_field_is_encoded_per_reader() -> None:
    m = prepared(subject="Brèves: {{ name }}, lisez « ça »")
    for name in ("Ada", "Алесь Бяляцкі", ("Marie Curie-Skłodowska " * 4).strip(), 'Quote "me" <now>'):
        msg = parse(m.to_bytes(recipient(name=name)))
        assert msg["Subject"] == f"Brèves: {name.strip()}, lisez « ça »"
        # RFC 2047 decoders ignore the fold between encoded words; the stdlib's address
        # parser keeps it as a space (it does the same to its own output), hence split()
        assert msg["To"].addresses[0].display_name.split() == name.split()
        assert msg["To"].addresses[0].addr_spec == "ales@example.org"


def test_ascii_names_that_need_quoting_stay_one_address() -> None:
    msg = parse(prepared().to_bytes(recipient(name="Lovelace, Ada (Countess)")))
    assert len(msg["To"].addresses) == 1
    assert msg["To"].addresses[0].display_name == "Lovelace, Ada (Countess)"


@pytest.mark.parametrize("subject", ["Hello\nBcc: victim@example.org", "Hello\r", "two\r\nlines"])
def test_cr_or_lf_in_the_subject_is_an_error(subject: str) -> None:
    with pytest.raises(InputError, match="subject.*single line"):
        prepared(subject=subject)


def test_a_newline_in_a_readers_name_cannot_forge_a_header() -> None:
    msg = parse(prepared(subject="Hi {{ name }}").to_bytes(recipient(name="Eve\r\nBcc: victim@example.org")))
    assert msg["Bcc"] is None
    assert "victim" in msg["Subject"] and "\n" not in msg["Subject"]


def test_html_fields_are_escaped_text_fields_are_not() -> None:
    m = prepared(html="<p>{{ city }}</p>", text="{{ city }}\n")
    text, html = bodies(parse(m.to_bytes(recipient(city='<b>"Minsk" & co</b>'))))
    assert text == '<b>"Minsk" & co</b>\n'
    assert "<p>&lt;b&gt;&quot;Minsk&quot; &amp; co&lt;/b&gt;</p>" in html


def test_name_fallback_when_the_csv_has_no_name() -> None:
    text, _ = bodies(parse(prepared().to_bytes(recipient(name=""))))
    assert text.startswith("Dear reader\n")
    assert parse(prepared().to_bytes(recipient(name="")))["To"] == "ales@example.org"


def test_a_hundred_kb_html_part_round_trips() -> None:
    html = ("<p>Ligne très longue {{ name }} — " + "x" * 300 + ". fin</p>\n.dot at start\n") * 250
    m = prepared(html=html, text=html)
    r = recipient(name=".Dotted Name")
    assert m.to_wire(r) == re.sub(rb"(?m)^\.", b"..", m.to_bytes(r))
    text, got = bodies(parse(m.to_bytes(r)))
    assert got == Template(html, escape_html=True).fill(r.fields)
    assert text == Template(html).fill(r.fields)


field_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=120)


@settings(max_examples=60, deadline=None)
@given(pieces=st.lists(field_text, min_size=1, max_size=6), value=field_text)
def test_any_text_and_any_value_decode_to_what_template_fill_gives(pieces: list[str], value: str) -> None:
    """The property behind the splice: decoded bytes == Template.fill, for any text and value."""
    body = "{{ city }}".join(pieces)
    m = prepared(html=body, text=body)
    r = recipient(city=value)
    data = m.to_bytes(r)
    assert data.isascii()
    # what SMTP carries: the same bytes, dot-stuffed (RFC 5321 4.5.2), then the tail
    assert m.to_wire(r, b".\r\n") == re.sub(rb"(?m)^\.", b"..", data) + b".\r\n"
    text, html = bodies(parse(data))
    norm = {k: v for k, v in r.fields.items()}
    expect_text = Template(body.replace("\r\n", "\n")).fill(norm)
    expect_html = Template(body.replace("\r\n", "\n"), escape_html=True).fill(norm)
    # a lone CR is a line end in MIME; compare with line ends normalised
    assert text.replace("\r", "\n") == expect_text.replace("\r\n", "\n").replace("\r", "\n")
    assert html.replace("\r", "\n") == expect_html.replace("\r\n", "\n").replace("\r", "\n")


def test_example_config_list_headers(tmp_path: Path) -> None:
    r = recipient()
    assert r.list_unsubscribe.startswith("<https://news.example.org/unsubscribe/")
    assert ", <mailto:unsubscribe@example.org?subject=" in r.list_unsubscribe
