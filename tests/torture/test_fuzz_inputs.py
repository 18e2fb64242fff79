"""Fuzzing the files a user writes: issue YAML, newsletter.toml, unsubscribe tokens.

The property everywhere: a clear error (NewsletterError / InvalidToken) or a valid
result — never another exception, never a hang, never a partially written output (the
build/ folder is untouched when a build fails). Inputs are both random bytes/text and
structured mutations of a valid file (keys dropped, values swapped for hostile ones,
unknown keys added), since random text rarely gets past the YAML parser.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from newsletter.audience.secrets import SigningKeys
from newsletter.audience.tokens import InvalidToken, TokenData, make_token, read_token
from newsletter.compose.build import build_issue
from newsletter.compose.issue import Issue, load_issue
from newsletter.config import Config, load_config
from newsletter.deliver.placeholders import PLACEHOLDER
from newsletter.errors import InputError, NewsletterError
from tests.conftest import REPO, run
from tests.torture.figures import count, fuzz_settings, no_hang
from tests.torture.hostile import BASE_ISSUE, HOSTILE_STRINGS, assert_safe_html, hostile_text

pytestmark = pytest.mark.torture

FUZZ = "fuzz examples"

def _leaf() -> st.SearchStrategy[Any]:
    return st.one_of(
        hostile_text(), st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(allow_nan=True, allow_infinity=True), st.dates(), st.datetimes(),
        st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=6), st.integers(), max_size=2),
        st.binary(max_size=12), st.sampled_from(["headline", "videos", "nope", "https://", "mailto:x", "2011-13-45"]),
    )


@st.composite
def mutated(draw: st.DrawFn, base: Any) -> Any:
    """A copy of `base` with random nodes replaced, removed, duplicated or added.

    How hard to mutate is drawn per example (0: untouched ... 3: wrecked), so the fuzz
    sees valid documents with one odd value as well as documents in pieces.
    """
    intensity = draw(st.integers(0, 3))

    def walk(value: Any, depth: int) -> Any:
        roll = draw(st.integers(0, 99))
        if roll < 2 * intensity:
            return draw(_leaf())
        if isinstance(value, dict):
            out: dict[Any, Any] = {}
            for key, sub in value.items():
                if draw(st.integers(0, 99)) < 2 * intensity:
                    continue  # drop the key
                out[key] = walk(sub, depth + 1)
            if draw(st.integers(0, 99)) < 2 * intensity:
                out[draw(st.one_of(st.text(max_size=8), st.sampled_from(["bodyy", "titel", "type", "items"])))] = (
                    draw(_leaf()))
            return out
        if isinstance(value, list):
            items = [walk(v, depth + 1) for v in value]
            r = draw(st.integers(0, 99))
            if r < 2 * intensity and items:
                items = items * draw(st.integers(2, 60))  # past max_items
            elif r < 4 * intensity and items:
                items.pop(draw(st.integers(0, len(items) - 1)))
            return items
        if isinstance(value, str) and roll < 10 * intensity:
            return draw(hostile_text())
        return value

    return walk(copy.deepcopy(base), 0)


URL_KEYS = {"url", "src"}
MARKDOWN_KEYS = {"body", "excerpt", "text", "intro"}
SINGLE_LINE_HOSTILE = [h[:80] for h in HOSTILE_STRINGS
                       if h.strip() and not any(c in h for c in "\r\n\x00\u2028\u2029\x85\x0b\x0c")]
FIXED_KEYS = {"type", "language", "style", "date", "width", "height", "view_in_browser"}


@st.composite
def hostile_leaves(draw: st.DrawFn, base: Any) -> Any:
    """A copy of `base`, same shape, with text fields (and URL tails) swapped for hostile text."""

    def walk(value: Any, key: str) -> Any:
        if isinstance(value, dict):
            return {k: walk(v, k) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, key) for v in value]
        if not isinstance(value, str) or key in FIXED_KEYS or draw(st.integers(0, 2)) == 0:
            return value
        if key in URL_KEYS:
            tail = draw(st.sampled_from(SINGLE_LINE_HOSTILE)).replace(" ", "%20")
            return value + draw(st.sampled_from(["", "?q=", "#", "/"])) + tail
        if key in MARKDOWN_KEYS:
            return draw(hostile_text().filter(lambda t: t.strip()))
        return draw(st.sampled_from(SINGLE_LINE_HOSTILE)) + draw(st.text(alphabet=st.characters(
            blacklist_categories=("Cs", "Cc", "Zl", "Zp")), max_size=10)).strip()

    return walk(copy.deepcopy(base), "")


def _tree(folder: Path) -> dict[str, str]:
    """Every file under `folder` with a hash of its content (to prove nothing changed)."""
    out = {}
    if folder.exists():
        for p in sorted(folder.rglob("*")):
            out[str(p.relative_to(folder))] = hashlib.sha1(p.read_bytes()).hexdigest() if p.is_file() else "dir"
    return out


def _check_issue_result(path: Path) -> Issue | None:
    """load_issue: an Issue or an InputError whose lines all name the file; nothing else."""
    with no_hang(20):
        try:
            issue = load_issue(path, display="issues/fuzz.yaml")
        except InputError as e:
            assert e.problems, "InputError without problems"
            for line in e.lines():
                assert line.startswith("issues/fuzz.yaml"), line
                assert "Traceback" not in line
            count("fuzz outcomes", "issue yaml rejected cleanly")
            return None
    assert isinstance(issue, Issue)
    count("fuzz outcomes", "issue yaml valid")
    return issue


@fuzz_settings(200, 5000)
@given(raw=st.one_of(st.binary(max_size=400), st.text(max_size=400).map(lambda s: s.encode("utf-8", "surrogatepass"))))
def test_issue_random_bytes(project: Path, raw: bytes) -> None:
    path = project / "issues" / "fuzz.yaml"
    path.write_bytes(raw)
    count(FUZZ, "issue yaml (random bytes)")
    _check_issue_result(path)


@fuzz_settings(80, 5000)
@given(doc=mutated(BASE_ISSUE))
def test_issue_structured_validation(project: Path, doc: Any) -> None:
    path = project / "issues" / "fuzz.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    count(FUZZ, "issue yaml (mutated, validate)")
    _check_issue_result(path)


@fuzz_settings(40, 800)
@given(doc=st.one_of(hostile_leaves(BASE_ISSUE), hostile_leaves(BASE_ISSUE), hostile_leaves(BASE_ISSUE),
                     mutated(BASE_ISSUE)))
def test_issue_structured_build(project: Path, config: Config, doc: Any) -> None:
    """A full build (Jinja2, MRML, premailer): valid and safe, or an error with build/ untouched."""
    if not (project / "build" / "good").exists():
        good = project / "issues" / "good.yaml"
        good.write_text(yaml.safe_dump(BASE_ISSUE, allow_unicode=True), encoding="utf-8")
        build_issue(good, config)  # a good build that must survive every failed one
    path = project / "issues" / "fuzz.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    (project / "build" / "fuzz").mkdir(parents=True, exist_ok=True)
    (project / "build" / "fuzz" / "email.html").write_text("previous good build")
    before = _tree(project / "build")
    count(FUZZ, "issue yaml (mutated, full build)")
    with no_hang(30):
        try:
            built = build_issue(path, config)
        except NewsletterError as e:
            assert e.lines() and all(line.strip() for line in e.lines())
            assert _tree(project / "build") == before, "a failed build changed build/"
            count("fuzz outcomes", "build rejected cleanly")
            return
    out = project / "build" / "fuzz"
    for name in ("email.html", "email.txt", "web.html", "meta.json"):
        assert (out / name).is_file(), name
    assert (out / "email.html").read_text() != "previous good build"
    assert not [p for p in (project / "build").iterdir() if p.name.startswith(".")], "temporary folders left"
    assert_safe_html(built.rendered.html)
    assert_safe_html(built.rendered.web_html, "web.html")
    assert not PLACEHOLDER.search(built.rendered.web_html), "per-recipient field left in web.html"
    count("fuzz outcomes", "build succeeded and HTML safe")


# --- newsletter.toml --------------------------------------------------------------------

BASE_CONFIG_TEXT = (REPO / "newsletter.toml").read_text(encoding="utf-8")


def _toml_value(v: Any) -> str:
    import json

    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v) if v == v and v not in (float("inf"), float("-inf")) else ("nan" if v != v else
                                                                                  ("inf" if v > 0 else "-inf"))
    if isinstance(v, dt.datetime | dt.date):
        return v.isoformat()
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v if x is not None) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(str(k), ensure_ascii=False)} = {_toml_value(x)}"
                               for k, x in v.items() if x is not None) + "}"
    if isinstance(v, bytes):
        return json.dumps(v.decode("latin-1"), ensure_ascii=False)
    return json.dumps(str(v), ensure_ascii=False)


def to_toml(doc: dict[str, Any]) -> str:
    """A tiny TOML writer for fuzzed documents (tomllib reads, it does not write)."""
    import json

    lines = []
    for k, v in doc.items():
        if not isinstance(v, dict) and v is not None:
            lines.append(f"{json.dumps(str(k), ensure_ascii=False)} = {_toml_value(v)}")
    for k, v in doc.items():
        if isinstance(v, dict):
            lines.append(f"[{json.dumps(str(k), ensure_ascii=False)}]")
            for kk, vv in v.items():
                if vv is not None:
                    lines.append(f"{json.dumps(str(kk), ensure_ascii=False)} = {_toml_value(vv)}")
    return "\n".join(lines) + "\n"


def _base_config() -> dict[str, Any]:
    import tomllib

    return tomllib.loads(BASE_CONFIG_TEXT)


HEADER_FIELDS = ("sender_name", "sender_address", "reply_to", "list_name", "list_id", "unsubscribe_mailto")


def _check_config(path: Path) -> Config | None:
    with no_hang(10):
        try:
            cfg = load_config(path)
        except InputError as e:
            assert e.problems
            assert all(str(p).startswith(str(path.name)) or str(path) in str(p) for p in e.problems), e.lines()
            count("fuzz outcomes", "newsletter.toml rejected cleanly")
            return None
    assert isinstance(cfg, Config)
    count("fuzz outcomes", "newsletter.toml valid")
    for name in HEADER_FIELDS:  # these end up in mail headers: no line breaks may get through
        value = getattr(cfg, name)
        if value is not None:
            assert not any(c in value for c in "\r\n\x00"), f"{name}={value!r} accepted by load_config"
    assert cfg.base_url.startswith(("https://", "http://"))
    return cfg


@fuzz_settings(200, 5000)
@given(raw=st.one_of(st.binary(max_size=300),
                     st.text(max_size=300).map(lambda s: s.encode("utf-8", "surrogatepass")),
                     st.builds(lambda cut, junk: BASE_CONFIG_TEXT[:cut].encode() + junk,
                               st.integers(0, len(BASE_CONFIG_TEXT)), st.binary(max_size=40))))
def test_config_random_bytes(tmp_path: Path, raw: bytes) -> None:
    path = tmp_path / "newsletter.toml"
    path.write_bytes(raw)
    count(FUZZ, "newsletter.toml (random / truncated bytes)")
    _check_config(path)


@fuzz_settings(100, 5000)
@given(doc=mutated(_base_config()))
def test_config_structured(tmp_path: Path, doc: Any) -> None:
    path = tmp_path / "newsletter.toml"
    path.write_text(to_toml(doc) if isinstance(doc, dict) else repr(doc), encoding="utf-8", errors="surrogatepass")
    count(FUZZ, "newsletter.toml (mutated)")
    _check_config(path)


def test_config_and_issue_errors_through_cli(project: Path) -> None:
    """The CLI turns every one of these into lines on stderr and exit 1 — never a traceback."""
    cases = {
        "newsletter.toml": b'[sender]\nname = "x\\r\\nBcc: a@b.c"\naddress = "a@b.c"\n',
        "issues/bad1.yaml": b"\xff\xfe\x00garbage",
        "issues/bad2.yaml": b"subject: [unclosed\n",
        "issues/bad3.yaml": b"a: &a [*a, *a]\n",
        "issues/bad4.yaml": ("x: " + "[" * 5000).encode(),
    }
    (project / "issues" / "good.yaml").write_text(yaml.safe_dump(BASE_ISSUE, allow_unicode=True))
    for name, content in cases.items():
        work = project / "case"
        if work.exists():
            shutil.rmtree(work)
        shutil.copytree(project, work, ignore=shutil.ignore_patterns("case"))
        (work / name).write_bytes(content)
        issue = name if name.startswith("issues/") else "issues/good.yaml"
        r = run(["build", issue], cwd=work)
        count("hostile cases", "malformed file through CLI")
        assert r.returncode == 1, (name, r.returncode, r.stdout, r.stderr)
        assert "Traceback" not in r.stderr, (name, r.stderr)
        assert r.stderr.strip(), name
        assert not (work / "build").exists() or not any((work / "build").iterdir()), name


# --- unsubscribe tokens -----------------------------------------------------------------

KEYS = SigningKeys(b"torture-current-key-0123456789", (b"torture-old-key-0123456789",), False)
OTHER = SigningKeys(b"someone-elses-key-0123456789ab", (), False)

addresses = st.emails() | st.text(max_size=40).filter(lambda s: "\n" not in s)


@fuzz_settings(300, 20000)
@given(token=st.one_of(st.text(max_size=300), st.text(alphabet="ABCDEFabcdef0123456789-_.=+/", max_size=300),
                       st.binary(max_size=100).map(lambda b: b.decode("latin-1"))))
def test_token_random(token: str) -> None:
    count(FUZZ, "unsubscribe tokens (random)")
    with no_hang(5):
        try:
            data = read_token(KEYS, token)
        except InvalidToken as e:
            assert str(e) == "invalid token"  # says nothing more
            return
    raise AssertionError(f"random string accepted as a token: {token!r} -> {data}")


@fuzz_settings(300, 20000)
@given(email=addresses, list_id=st.text(max_size=30).filter(lambda s: "\n" not in s),
       language=st.sampled_from(["en", "fr"]), data=st.data())
def test_token_tampered(email: str, list_id: str, language: str, data: st.DataObject) -> None:
    """A token round-trips; any change to it, and any foreign key, is refused."""
    count(FUZZ, "unsubscribe tokens (round trip + tamper)")
    token = make_token(KEYS, email, list_id, language)
    assert read_token(KEYS, token, list_id=list_id) == TokenData(email, list_id, language)
    old_signed = make_token(SigningKeys(KEYS.old[0], (), False), email, list_id, language)
    assert read_token(KEYS, old_signed).email == email  # rotated-out key still verifies
    with pytest.raises(InvalidToken):
        read_token(OTHER, token)
    with pytest.raises(InvalidToken):
        read_token(KEYS, token, list_id=list_id + "x")
    i = data.draw(st.integers(0, len(token) - 1))
    how = data.draw(st.sampled_from(["replace", "insert", "delete", "truncate"]))
    if how == "replace":
        c = data.draw(st.characters(codec="ascii").filter(lambda c: c != token[i]))
        bad = token[:i] + c + token[i + 1:]
    elif how == "insert":
        bad = token[:i] + data.draw(st.characters()) + token[i:]
    elif how == "delete":
        bad = token[:i] + token[i + 1:]
    else:
        bad = token[:i]
    try:
        got = read_token(KEYS, bad)
    except InvalidToken:
        return
    raise AssertionError(f"tampered token accepted ({how} at {i}): {token!r} -> {bad!r} -> {got}")


def test_token_env_keys_rotate(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keys from the environment: a token made under an old key verifies after rotation."""
    from newsletter.audience.secrets import MissingSecret, signing_keys

    monkeypatch.setenv("NEWSLETTER_SECRET", "first-key-0123456789abcdef")
    monkeypatch.delenv("NEWSLETTER_OLD_SECRETS", raising=False)
    token = make_token(signing_keys(), "a@example.org", "l.example.org")
    monkeypatch.setenv("NEWSLETTER_SECRET", "second-key-0123456789abcdef")
    with pytest.raises(InvalidToken):
        read_token(signing_keys(), token)
    monkeypatch.setenv("NEWSLETTER_OLD_SECRETS", " first-key-0123456789abcdef , ")
    assert read_token(signing_keys(), token).email == "a@example.org"
    monkeypatch.setenv("NEWSLETTER_OLD_SECRETS", " first-key-0123456789abcdef , x")  # a guessable old key
    with pytest.raises(MissingSecret, match="NEWSLETTER_OLD_SECRETS: key 2 of 2 is too short"):
        signing_keys()
    count("hostile cases", "token key rotation")



# --- subscriber CSV ---------------------------------------------------------------------

CSV_HEADERS = st.sampled_from(["email,name,language,city", "Email;Name;Language", "e-mail\tname", "\ufeffemail,name",
                               "email,email", "name,city", "email,unsubscribe_url", "email,na me,x-y", ""])
csv_cells = st.one_of(st.emails(), hostile_text(30), st.sampled_from(['"', '""', '"a,b"', "a\r\nb", ";", "\t"]))


@st.composite
def csv_files(draw: st.DrawFn) -> bytes:
    if draw(st.integers(0, 4)) == 0:
        return draw(st.binary(max_size=400))
    sep = draw(st.sampled_from([",", ";", "\t"]))
    lines = [draw(CSV_HEADERS)]
    for _ in range(draw(st.integers(0, 12))):
        lines.append(sep.join(draw(st.lists(csv_cells, min_size=0, max_size=5))))
    eol = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    return eol.join(lines).encode("utf-8", "surrogatepass")


@fuzz_settings(300, 8000)
@given(raw=csv_files())
def test_subscriber_csv(tmp_path: Path, raw: bytes) -> None:
    """Rows come out valid (clean, unique, ASCII addresses) or rejected with their line; never a crash."""
    from newsletter.audience.subscribers import Rejected, Subscriber, read_subscribers
    from newsletter.store.db import email_key

    path = tmp_path / "subscribers.csv"
    path.write_bytes(raw)
    count(FUZZ, "subscriber CSV")
    seen: set[str] = set()
    last_line = 1
    with no_hang(10):
        try:
            for row in read_subscribers(path, display="subscribers.csv"):
                assert row.line > last_line or isinstance(row, Rejected), row
                if isinstance(row, Subscriber):
                    last_line = row.line
                    assert row.email.isascii() and "@" in row.email, row
                    assert not any(c in row.email for c in " \r\n\x00<>,;"), row
                    assert email_key(row.email) not in seen, f"duplicate yielded: {row.email}"
                    seen.add(email_key(row.email))
                    for value in (row.name, *row.fields.values()):
                        assert not any(ord(c) < 32 or 0x7F <= ord(c) <= 0x9F or c in "\u2028\u2029"
                                       for c in value), (row, value)
                else:
                    assert row.reason, row
        except InputError as e:
            assert e.problems and all(str(p).startswith("subscribers.csv") for p in e.problems), e.lines()
