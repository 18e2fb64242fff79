"""The subscriber CSV: streamed, validated, normalised, de-duplicated, never rewritten."""

from __future__ import annotations

import hashlib
import tracemalloc
from pathlib import Path

import pytest

from newsletter.audience.subscribers import ReadStats, Rejected, Subscriber, read_subscribers
from newsletter.errors import InputError
from tests.conftest import REPO


def read(path: Path) -> tuple[list[Subscriber], list[Rejected], ReadStats]:
    stats = ReadStats()
    rows = list(read_subscribers(path, stats=stats, display="subs.csv"))
    return ([r for r in rows if isinstance(r, Subscriber)], [r for r in rows if isinstance(r, Rejected)], stats)


def test_bom_semicolons_whitespace_invalid_duplicates_and_merge_fields(tmp_path: Path) -> None:
    csv = tmp_path / "subs.csv"
    csv.write_bytes(
        "\ufeff Email ; Name ;language; City ; Member since\n"  # 1
        "  Ada@Example.ORG ;  Ada Lovelace ; en ; London ; 1843\n"  # 2
        "not-an-address;Nobody;en;;\n"  # 3
        "\n"  # 4 (blank: ignored)
        "ada@example.org;Ada again;en;;\n"  # 5 duplicate (case-insensitive)
        'marie@example.org;"Curie;\nMarie";fr;Paris;1900\n'  # 6-7, quoted ; and newline
        "ales@bad_domain;Ales;en;Minsk;\n"  # 8
        ";No address;en;;\n"  # 9
        "bob@example.org\n"  # 10: short row
        .encode()
    )
    subs, rejected, stats = read(csv)
    assert [s.email for s in subs] == ["Ada@example.org", "marie@example.org", "bob@example.org"]
    ada, marie, bob = subs
    assert (ada.name, ada.language, ada.line) == ("Ada Lovelace", "en", 2)
    assert ada.fields == {"city": "London", "member_since": "1843"}
    assert marie.name == "Curie; Marie" and marie.line == 6 and marie.language == "fr"
    assert bob.name == "" and bob.language == "en" and bob.fields == {"city": "", "member_since": ""}
    assert [(r.line, r.duplicate) for r in rejected] == [(3, False), (5, True), (8, False), (9, False)]
    assert "@-sign" in rejected[0].reason
    assert (stats.rows, stats.valid, stats.invalid_count, stats.duplicate_count) == (7, 3, 3, 1)


def test_control_characters_in_names_become_spaces(tmp_path: Path) -> None:
    csv = tmp_path / "subs.csv"
    csv.write_text("email,name,city\nx@example.org,Eve\x85Bcc: v@example.org,Mi\u2028nsk\x00\n", encoding="utf-8")
    (s,), _, _ = read(csv)
    assert s.name == "Eve Bcc: v@example.org" and s.fields["city"] == "Mi nsk"


def test_tab_separated_and_e_mail_header(tmp_path: Path) -> None:
    csv = tmp_path / "subs.csv"
    csv.write_text("E-mail\tname\nx@example.org\tX\n")
    subs, rejected, _ = read(csv)
    assert [(s.email, s.name) for s in subs] == [("x@example.org", "X")] and not rejected


def test_international_domain_is_sent_as_ascii(tmp_path: Path) -> None:
    csv = tmp_path / "subs.csv"
    csv.write_text("email\nales@bialiacki.by\nales@спринг.бел\nалесь@example.org\n")
    subs, rejected, _ = read(csv)
    assert [s.email for s in subs] == ["ales@bialiacki.by", "ales@" + "спринг.бел".encode("idna").decode()]
    assert [r.line for r in rejected] == [4]  # a non-ASCII mailbox would need SMTPUTF8


@pytest.mark.parametrize("content, message", [
    ("name,city\nAda,London\n", "no 'email' column"),
    ("", "empty file"),
    ("email,unsubscribe_url\n", "set by the tool"),
    ("email,city,City\n", "appears twice"),
])
def test_file_level_problems_name_the_file_and_line(tmp_path: Path, content: str, message: str) -> None:
    csv = tmp_path / "subs.csv"
    csv.write_text(content)
    with pytest.raises(InputError) as e:
        read(csv)
    assert e.value.problems[0].file == "subs.csv"
    assert message in str(e.value)


def test_missing_file_and_not_utf8(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        read(tmp_path / "nope.csv")
    bad = tmp_path / "subs.csv"
    bad.write_bytes(b"email,name\nx@example.org,Fran\xe7ois\n")
    with pytest.raises(InputError, match="subs.csv:2: not UTF-8"):
        read(bad)


def test_the_file_is_never_rewritten(tmp_path: Path) -> None:
    csv = tmp_path / "subs.csv"
    csv.write_bytes((REPO / "subscribers.example.csv").read_bytes() + b"dup@example.org\nDUP@example.org\n")
    before = hashlib.sha256(csv.read_bytes()).hexdigest()
    read(csv)
    assert hashlib.sha256(csv.read_bytes()).hexdigest() == before


def test_streamed_not_loaded(tmp_path: Path) -> None:
    """10,000 rows: peak memory ~1 MB; holding the rows would take ~7.5 MB."""
    csv = tmp_path / "subs.csv"
    with csv.open("w") as f:
        f.write("email,name,language,city,notes\n")
        for i in range(10_000):
            f.write(f"reader{i}@example.org,Reader number {i},en,Minsk,{'x' * 40}\n")
    tracemalloc.start()
    try:
        n = sum(1 for r in read_subscribers(csv) if isinstance(r, Subscriber))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert n == 10_000
    assert peak < 3 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB"


def test_rows_come_before_the_file_is_fully_read(tmp_path: Path) -> None:
    csv = tmp_path / "subs.csv"
    csv.write_bytes(b"email\nfirst@example.org\n" + b"x@example.org\n" * 10_000 + b"\xff\xfe broken\n")
    rows = read_subscribers(csv)
    first = next(rows)
    assert isinstance(first, Subscriber) and first.email == "first@example.org"
    with pytest.raises(InputError, match="not UTF-8"):
        list(rows)


def test_example_csv_is_valid() -> None:
    subs, rejected, _ = read(REPO / "subscribers.example.csv")
    assert len(subs) >= 4 and not rejected
    assert any(not s.name for s in subs), "the example shows the name fallback"
    assert all("city" in s.fields for s in subs)


def test_skip_passes_over_sent_plain_addresses_and_validates_everything_else(tmp_path: Path) -> None:
    """A resumed send asks the ledger first: rows it says are `sent` are not validated again,
    but only plain ASCII addresses take that path, and duplicates are found across both paths."""
    from newsletter.audience.subscribers import Done, normalise_address

    csv = tmp_path / "subs.csv"
    csv.write_text(
        "email,name\n"  # 1
        " Ada@Example.ORG ,Ada\n"  # 2: sent, plain -> Done
        "bob@example.org,Bob\n"  # 3: sent, plain -> Done
        "ADA@example.org,Ada again\n"  # 4: duplicate of 2 (found on the fast path)
        "carl@bücher.example,Carl\n"  # 5: sent key, but not plain: validated (IDN domain)
        "bad..dots@example.org,Bad\n"  # 6: asked about, not sent -> validated, rejected
        "BOB@EXAMPLE.ORG,Bob again\n"  # 7: sent per the ledger but a duplicate of 3
    )
    asked: list[list[str]] = []
    sent = {"ada@example.org", "carl@bücher.example", "bob@example.org"}

    def skip(keys: list[str]) -> set[str]:
        asked.append(keys)
        return {k for k in keys if k in sent}

    stats = ReadStats()
    rows = list(read_subscribers(csv, stats=stats, skip=skip))
    assert asked == [["ada@example.org", "bob@example.org", "ada@example.org", "bad..dots@example.org",
                      "bob@example.org"]]  # the IDN address is not plain: never asked about
    kinds = [(type(r).__name__, r.line, r.email) for r in rows]
    assert kinds[0] == ("Done", 2, "Ada@example.org") == ("Done", 2, normalise_address("Ada@Example.ORG"))
    assert kinds[1] == ("Done", 3, "bob@example.org")
    assert kinds[2] == ("Rejected", 4, "ADA@example.org")
    assert kinds[3] == ("Subscriber", 5, "carl@xn--bcher-kva.example")
    assert kinds[4][0] == "Rejected" and kinds[4][1] == 6 and "period" in rows[4].reason  # validated: not valid
    assert kinds[5][:2] == ("Rejected", 7) and rows[5].duplicate
    assert stats.rows == 6 and stats.valid == 3 and stats.done == 2
    assert stats.duplicate_count == 2 and stats.invalid_count == 1
    assert all(isinstance(r, Done) for r in rows[:2])


def _corpus() -> list[str]:
    """Addresses of every shape the memoised path must agree with email-validator on."""
    import random

    import email_validator.rfc_constants as rfc

    fixed = [
        "ada@example.org", "  Ada@Example.ORG ", "a.b-c+d_e!#$%&'*/=?^`{|}~@example.org", "ada@bücher.example",
        "ada@xn--bcher-kva.example", "Info@Example.org", "POSTMASTER@example.org", "ada@[192.0.2.1]",
        "ada@localhost", "ada@example", "ada@ex ample.org", "ada@-example.org", "ada@example..org",
        ".ada@example.org", "ada.@example.org", "a..da@example.org", '"ada lovelace"@example.org',
        '"ada"@example.org', "Ada <ada@example.org>", "adá@example.org", "@example.org", "ada@",
        "ada", "ada@@example.org", "ada@example.org.", "ada@exa_mple.org", "ada@example.invalid",
        "ada@test", "ada@a.b", "ada@" + "a" * 64 + ".org", "x" * 64 + "@example.org", "x" * 65 + "@example.org",
        "x" * 240 + "@example.org", "x" * 242 + "@example.org", "a@" + ".".join(["b" * 62] * 4),
        "ada@" + "ü" * 60 + ".example", "x" * 180 + "@" + "ü" * 30 + ".example",
        "ada@EXAMPLE.ORG", "ada@例え.テスト", "ada@例え.jp", "ada@ｅｘａｍｐｌｅ.org", "ada@example.org\u200b",
    ]
    fixed += [f"{name}@example.org" for name in rfc.CASE_INSENSITIVE_MAILBOX_NAMES]
    fixed += [f"{name.upper()}@example.org" for name in rfc.CASE_INSENSITIVE_MAILBOX_NAMES]
    rnd = random.Random(11)
    alphabet = "abcAB9.-_+@\"ü é<>[]!~" + "x" * 10
    fixed += ["".join(rnd.choice(alphabet) for _ in range(rnd.randint(1, 30))) for _ in range(3000)]
    domains = ["Example.org", "bü.example", "b..c", "x" * 70 + ".org"]
    fixed += [f"{rnd.choice(['a', 'Ab.c', 'd-e'])}@{rnd.choice(domains)}" for _ in range(300)]
    return fixed


def test_normalise_address_agrees_with_email_validator_on_every_shape() -> None:
    """The per-domain memo (_domain_forms) is ours and must change nothing: the same result,
    or the same refusal in email-validator's own words, for every address."""
    from email_validator import EmailNotValidError, validate_email

    from newsletter.audience.subscribers import normalise_address

    def reference(address: str) -> str:
        try:
            r = validate_email(address.strip(), check_deliverability=False, allow_smtputf8=False)
        except EmailNotValidError as e:
            return f"refused: {e}"
        return r.ascii_email or r.normalized

    def ours(address: str) -> str:
        try:
            return normalise_address(address)
        except ValueError as e:
            return f"refused: {e}"

    corpus = _corpus()
    for _ in range(2):  # the second pass answers from the memo
        assert [ours(a) for a in corpus] == [reference(a) for a in corpus]
    outcomes = [reference(a).startswith("refused") for a in corpus]
    assert 100 < outcomes.count(False) and 100 < outcomes.count(True)  # both kinds really exercised


def test_the_memo_is_ours_and_email_validator_is_untouched() -> None:
    import importlib

    import email_validator.syntax

    from newsletter.audience import subscribers

    ev = importlib.import_module("email_validator.validate_email")  # the package's attribute is the function

    subscribers.normalise_address("ada@memo.example.org")
    subscribers.normalise_address("bob@memo.example.org")
    assert subscribers._domain_forms.cache_info().hits >= 1
    assert ev.validate_email_domain_name is email_validator.syntax.validate_email_domain_name
