"""Bad input never gets a traceback: each malformed input gives its exact `FILE:LINE: field: message`
lines on stderr, exit status 1, and nothing is written under build/.

Every case runs `newsletter build` in a copy of the example project (a few as a real process).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run

GOOD = """\
subject: Hello
date: 2011-11-28
blocks:
  - type: section
    body: Hi
list: campaigns
"""


def with_blocks(more: str) -> str:
    """GOOD with more blocks after its own (before `list:`, so line numbers stay)."""
    return GOOD.replace("list: campaigns\n", more + "list: campaigns\n")

# (files to write, relative to the project; issue(s) to build; exact stderr lines)
def _replace_all(text: str, edits: dict[str, str]) -> str:
    """The example config with some values broken, every line where it was."""
    for good, bad in edits.items():
        assert good in text, good
        text = text.replace(good, bad, 1)
    return text


CASES: dict[str, tuple[dict[str, Any], list[str], list[str]]] = {
    "malformed-yaml": (
        {"issues/bad.yaml": "subject: Hello\ndate: 2011-11-28\nblocks: [\n  {type: section, body: hi}\n"},
        ["issues/bad.yaml"],
        ["issues/bad.yaml:3: malformed YAML: the [ that opens on this line is never closed with ]"],
    ),
    "tab-indentation": (
        {"issues/bad.yaml": "subject: Hello\ndate: 2011-11-28\nblocks:\n\t- type: section\n"},
        ["issues/bad.yaml"],
        ["issues/bad.yaml:4: malformed YAML: tabs are not allowed for indentation; use spaces"],
    ),
    "unclosed-quote-at-the-end": (
        {"issues/bad.yaml": GOOD.replace("subject: Hello", 'subject: "Hello')},
        ["issues/bad.yaml"],
        ['issues/bad.yaml:1: malformed YAML: unclosed quote: the " that opens on this line is never closed'],
    ),
    "unclosed-quote-closed-by-a-later-one": (
        {"issues/bad.yaml": "subject: Hello\npreheader: 'Oops\ndate: 2011-11-28\nblocks:\n  - type: section\n"
                            "    body: 'Hi'\n"},
        ["issues/bad.yaml"],
        ["issues/bad.yaml:2: malformed YAML: unclosed quote: the ' that opens on this line runs on to line 6; "
         "close it on its own line"],
    ),
    "text-after-a-closing-quote": (
        {"issues/bad.yaml": GOOD.replace("subject: Hello", 'subject: "Hello" world')},
        ["issues/bad.yaml"],
        ["issues/bad.yaml:1: malformed YAML: text after the closing quote: put the whole value in quotes"],
    ),
    "missing-colon": (
        {"issues/bad.yaml": GOOD.replace("date: 2011-11-28", "date 2011-11-28")},
        ["issues/bad.yaml"],
        ["issues/bad.yaml:2: malformed YAML: expected `key: value` here: is the ':' after the key missing?"],
    ),
    "colon-in-a-value": (
        {"issues/bad.yaml": GOOD.replace("subject: Hello", "subject: Breaking: hello")},
        ["issues/bad.yaml"],
        ["issues/bad.yaml:1: malformed YAML: unexpected ':' here: put a value that contains ': ' in quotes, "
         "or indent this line like the ones above it"],
    ),
    "indentation": (
        {"issues/bad.yaml": GOOD.replace("    body: Hi", "   body: Hi")},
        ["issues/bad.yaml"],
        ["issues/bad.yaml:5: malformed YAML: this line's indentation does not match the lines above it"],
    ),
    "backslash-in-double-quotes": (
        {"issues/bad.yaml": GOOD.replace("subject: Hello", 'subject: "C:\\scans"')},
        ["issues/bad.yaml"],
        ["issues/bad.yaml:1: malformed YAML: a backslash inside double quotes starts an escape: write \\\\ for a "
         "backslash, or use single quotes"],
    ),
    "value-starting-with-at": (
        {"issues/bad.yaml": GOOD.replace("subject: Hello", "subject: @home")},
        ["issues/bad.yaml"],
        ["issues/bad.yaml:1: malformed YAML: a value cannot start with @: put the whole value in quotes"],
    ),
    "unquoted-placeholder": (
        {"issues/bad.yaml": GOOD.replace("subject: Hello", "subject: {{ name }}")},
        ["issues/bad.yaml"],
        ['issues/bad.yaml:1: subject: a value starting with {{ must be in quotes: "{{ name }}"'],
    ),
    "unquoted-placeholder-then-text": (
        {"issues/bad.yaml": GOOD.replace("body: Hi", "body: {{ name }}, hi")},
        ["issues/bad.yaml"],
        ['issues/bad.yaml:5: malformed YAML: a value starting with {{ must be in quotes: "{{ name }}, ..."'],
    ),
    "empty-file": (
        {"issues/bad.yaml": "# nothing yet\n"},
        ["issues/bad.yaml"],
        ["issues/bad.yaml:1: file is empty"],
    ),
    "not-a-mapping": (
        {"issues/bad.yaml": "- subject: Hello\n"},
        ["issues/bad.yaml"],
        ["issues/bad.yaml:1: (top): must be a mapping of keys, got a list"],
    ),
    "missing-required": (
        {"issues/bad.yaml": "preheader: Hi\nblocks:\n  - type: section\n"},
        ["issues/bad.yaml"],
        ["issues/bad.yaml:1: subject: missing (required)",
         "issues/bad.yaml:1: date: missing (required)",
         "issues/bad.yaml:3: blocks[0].body: missing (required)"],
    ),
    "unknown-block-type": (
        {"issues/bad.yaml": with_blocks("  - type: qoutes\n    items: []\n")},
        ["issues/bad.yaml"],
        ["issues/bad.yaml:6: blocks[1].type: unknown block type 'qoutes'; did you mean 'quotes'?"],
    ),
    "unknown-key-did-you-mean": (
        {"issues/bad.yaml": GOOD.replace("subject: Hello\n", "subject: Hello\npreheder: Hi\n")
         .replace("list: campaigns\n", "")
         + "  - type: videos\n    items:\n      - captoin: C\n        caption: C\n        url: https://example.org/v\n"
           "        thumbnail: {src: 'https://example.org/t.jpg', alt: T}\n"},
        ["issues/bad.yaml"],
        ["issues/bad.yaml:2: preheder: unknown key 'preheder'; did you mean 'preheader'?",
         "issues/bad.yaml:9: blocks[1].items[0].captoin: unknown key 'captoin'; did you mean 'caption'?"],
    ),
    "bad-urls": (
        {"issues/bad.yaml": GOOD.replace("blocks:", "links:\n  donate: {url: 'www.example.org/donate'}\n"
                                                   "  forward: {url: 'javascript:alert(1)'}\nblocks:")},
        ["issues/bad.yaml"],
        ["issues/bad.yaml:4: links.donate.url: 'www.example.org/donate' is not an absolute URL (needs https://...)",
         "issues/bad.yaml:5: links.forward.url: 'javascript:alert(1)': scheme 'javascript' not allowed "
         "(use https or http or mailto)"],
    ),
    "not-a-date": (
        {"issues/bad.yaml": GOOD.replace("date: 2011-11-28", "date: 2011-13-40").replace("list: campaigns\n", "")
         + "  - type: quotes\n    items:\n      - {text: T, author: A, date: yesterday}\n"},
        ["issues/bad.yaml"],
        ["issues/bad.yaml:2: date: '2011-13-40' is not a date (write YYYY-MM-DD)",
         "issues/bad.yaml:8: blocks[1].items[0].date: 'yesterday' is not a date (write YYYY-MM-DD)"],
    ),
    "missing-image-alt": (
        {"issues/bad.yaml": with_blocks("  - type: headline\n    title: T\n    body: B\n    image:\n"
                                   "      src: https://example.org/a.jpg\n      alt: '  '\n"
                                   "  - type: gallery\n    items:\n      - label: L\n        url: https://example.org/g\n"
                                   "        image: {src: 'https://example.org/b.jpg'}\n")},
        ["issues/bad.yaml"],
        ["issues/bad.yaml:11: blocks[1].image.alt: must not be empty",
         "issues/bad.yaml:16: blocks[2].items[0].image.alt: missing (required)"],
    ),
    "wrong-types": (
        {"issues/bad.yaml": "subject: [Hello]\ndate: 2011-11-28\nlinks:\n  view_in_browser: 'yes please'\n"
                            "blocks:\n  - type: buttons\n    items: {label: Give, url: 'https://example.org'}\n"
                            "  - type: headline\n    title: T\n    body: B\n"
                            "    image: {src: 'https://example.org/a.jpg', alt: A, width: wide}\n"},
        ["issues/bad.yaml"],
        ["issues/bad.yaml:1: subject: must be text, got a list",
         "issues/bad.yaml:4: links.view_in_browser: must be true, false or {label: ...}, got text ('yes please')",
         "issues/bad.yaml:7: blocks[0].items: must be a list, got a mapping",
         "issues/bad.yaml:11: blocks[1].image.width: must be a whole number, got text ('wide')"],
    ),
    "duplicate-key": (
        {"issues/bad.yaml": with_blocks("  - type: section\n    body: one\n    body: two\n")},
        ["issues/bad.yaml"],
        ["issues/bad.yaml:8: blocks[1].body: duplicate key (first set on line 7)"],
    ),
    "not-utf8": (
        {"issues/bad.yaml": b"subject: Caf\xe9\ndate: 2011-11-28\n"},
        ["issues/bad.yaml"],
        ["issues/bad.yaml:1: not valid UTF-8 text"],
    ),
    "file-not-found": (
        {},
        ["issues/missing.yaml"],
        ["issues/missing.yaml: file not found"],
    ),
    "bad-file-name": (
        {"issues/my issue!.yaml": GOOD},
        ["issues/my issue!.yaml"],
        ["issues/my issue!.yaml: file name 'my issue!.yaml' cannot be an issue id: use letters, digits, '.', '-', '_'"],
    ),
    "unknown-language": (
        {"issues/bad.yaml": GOOD.replace("blocks:", "language: fre\nblocks:")},
        ["issues/bad.yaml"],
        ["issues/bad.yaml:3: language: 'fre' is not a language tag (BCP 47, e.g. en, fr, pt-BR, sr-Latn); "
         "did you mean 'fr'?"],
    ),
    "template-syntax-error": (
        {"issues/bad.yaml": GOOD,
         "templates/blocks/section.mjml.j2": "<mj-section>\n  <mj-column>\n    <mj-text>{{ block.body }</mj-text>\n"},
        ["issues/bad.yaml"],
        ["templates/blocks/section.mjml.j2:3: template: syntax error: unexpected '}'"],
    ),
    "template-undefined": (
        {"issues/bad.yaml": GOOD,
         "templates/blocks/section.mjml.j2": "<mj-section>\n<mj-column>\n<mj-text>{{ block.bodyy.x }}</mj-text>\n"
                                             "</mj-column>\n</mj-section>\n"},
        ["issues/bad.yaml"],
        ["templates/blocks/section.mjml.j2:3: template: error: 'dict object' has no attribute 'bodyy'"],
    ),
    "template-unreadable": (
        {"issues/bad.yaml": GOOD, "templates/partials/footer.mjml.j2": b"<mj-section>\n\n\xff\xfe</mj-section>\n"},
        ["issues/bad.yaml"],
        ["templates/partials/footer.mjml.j2:3: template: not valid UTF-8 text"],
    ),
    "template-include-missing": (
        {"issues/bad.yaml": GOOD,
         "templates/blocks/section.mjml.j2": "<mj-section><mj-column>\n{% include 'partials/logo.mjml.j2' %}\n"
                                             "</mj-column></mj-section>\n"},
        ["issues/bad.yaml"],
        ["templates/blocks/section.mjml.j2:2: template: template not found: partials/logo.mjml.j2"],
    ),
    "template-bad-mjml": (
        {"issues/bad.yaml": GOOD,
         "templates/blocks/section.mjml.j2": "<mj-section><mj-column><mj-text>{{ block.body }}"
                                             "</mj-column></mj-section>\n"},
        ["issues/bad.yaml"],
        ["templates/blocks/section.mjml.j2: blocks[0]: MJML error: unexpected end of stream in root template"],
    ),
    "config-bad-values": (
        {"issues/bad.yaml": GOOD, "newsletter.toml": lambda toml: _replace_all(toml, BAD_CONFIG)},
        ["issues/bad.yaml"],
        ["newsletter.toml:7: default_language: 'deutsch' is not a language tag (BCP 47, e.g. en, fr, pt-BR, sr-Latn)",
         "newsletter.toml:16: sender.address: 'newsletter-at-example.org' is not valid: an email address",
         "newsletter.toml:36: site.base_url: 'news.example.org' is not an absolute URL (needs https://...)",
         "newsletter.toml:39: send.backend: 'smpt' is not one of: outbox, smtp, sendgrid; did you mean 'smtp'?",
         "newsletter.toml:45: smtp.port: must be a whole number, got text ('twenty-five')"],
    ),
    "config-malformed-toml": (
        {"issues/bad.yaml": GOOD, "newsletter.toml": 'default_language = "en"\n[sender\nname = "x"\n'},
        ["issues/bad.yaml"],
        ["newsletter.toml:2: malformed TOML: Expected ']' at the end of a table declaration"],
    ),
    "config-and-issue-both-bad": (
        {"issues/bad.yaml": GOOD.replace("body: Hi", "body: Hi\n    heading: [x]"),
         "newsletter.toml": '[sender]\nname = "x"\naddres = "a@example.org"\n'},
        ["issues/bad.yaml"],
        ["newsletter.toml:1: sender.address: missing (required)",
         "newsletter.toml:1: organisation: missing (required)",
         "newsletter.toml:1: site: missing (required)",
         "newsletter.toml:1: list: missing (required): a [list] table, or one [lists.<id>] table per list",
         "newsletter.toml:3: sender.addres: unknown key 'addres'; did you mean 'address'?",
         "issues/bad.yaml:6: blocks[0].heading: must be text, got a list"],
    ),
    "build-dir-is-a-file": (
        {"issues/bad.yaml": GOOD,
         "newsletter.toml": lambda toml: toml.replace('build_dir = "build"', 'build_dir = "subscribers.example.csv"')},
        ["issues/bad.yaml"],
        ["subscribers.example.csv: build_dir: cannot write the build here: File exists"],
    ),
    "language-not-a-language": (
        {"issues/bad.yaml": GOOD.replace("blocks:", "language: zz-Latn\nblocks:")},
        ["issues/bad.yaml"],
        ["issues/bad.yaml:3: language: 'zz-Latn' is not a language tag (BCP 47, e.g. en, fr, pt-BR, sr-Latn)"],
    ),
    "edition-language-differs-from-file-name": (
        {"issues/bad.yaml": GOOD, "issues/bad.fr.yaml": GOOD.replace("blocks:", "language: de\nblocks:")},
        ["issues/bad.yaml"],
        ["issues/bad.fr.yaml:3: language: 'de', but the file name makes this the 'fr' edition (bad.fr.yaml): "
         "rename the file or fix the language"],
    ),
    "edition-of-an-issue-that-does-not-exist": (
        {"issues/gone.fr.yaml": GOOD},
        ["issues/gone.fr.yaml"],
        ["issues/gone.fr.yaml:1: an edition (fr) of an issue that does not exist: no gone.yaml next to it "
         "(an edition is <id>.<lang>.yaml beside its issue's <id>.yaml)"],
    ),
    "edition-problems-reported-with-the-issue's": (
        {"issues/bad.yaml": GOOD.replace("subject: Hello", "subjet: Hello"),
         "issues/bad.es.yaml": GOOD.replace("date: 2011-11-28", "date: pronto")},
        ["issues/bad.yaml"],
        ["issues/bad.yaml:1: subjet: unknown key 'subjet'; did you mean 'subject'?",
         "issues/bad.yaml:1: subject: missing (required)",
         "issues/bad.es.yaml:2: date: 'pronto' is not a date (write YYYY-MM-DD)"],
    ),
    "po-syntax-error": (
        {"issues/bad.yaml": GOOD.replace("blocks:", "language: de\nblocks:"),
         "locale/de/LC_MESSAGES/messages.po": 'msgid ""\nmsgstr ""\n"Language: de\\n"\n\n'
                                              'msgid "Donate"\nmsgstr "Spenden"\n\nmsgid "Read more" Weiterlesen\n'},
        ["issues/bad.yaml"],
        ["locale/de/LC_MESSAGES/messages.po:8: not a valid .po file: "
         "missing msgstr for msgid 'Read more\" Weiterlese'"],
    ),
    "po-wrong-placeholder": (
        {"issues/bad.yaml": GOOD,
         "locale/de/LC_MESSAGES/messages.po": (
             'msgid ""\nmsgstr ""\n"Language: de\\n"\n\n'
             'msgid "If you no longer wish to receive messages from %(org)s, unsubscribe here."\n'
             'msgstr "Wenn Sie keine Nachrichten mehr erhalten möchten, melden Sie sich hier ab."\n\n'
             'msgid "Do you want to stop receiving %(list)s at %(email)s?"\n'
             'msgstr "Möchten Sie %(liste)s an %(email)s nicht mehr erhalten?"\n')},
        ["issues/bad.yaml"],
        ["locale/de/LC_MESSAGES/messages.po:6: msgstr: translation of 'If you no longer wish to receive messages "
         "from %(org)s, unsubscribe here.' lacks %(org)s",
         "locale/de/LC_MESSAGES/messages.po:9: msgstr: translation of 'Do you want to stop receiving %(list)s at "
         "%(email)s?' lacks %(list)s; has unknown %(liste)s"],
    ),
    "all-problems-of-all-issues": (
        {"issues/a.yaml": GOOD.replace("date: 2011-11-28", "date: soon"),
         "issues/b.yaml": GOOD.replace("subject: Hello", "subjet: Hello"),
         "issues/c.yaml": GOOD},
        ["issues/a.yaml", "issues/b.yaml", "issues/c.yaml"],
        ["issues/a.yaml:2: date: 'soon' is not a date (write YYYY-MM-DD)",
         "issues/b.yaml:1: subjet: unknown key 'subjet'; did you mean 'subject'?",
         "issues/b.yaml:1: subject: missing (required)"],
    ),
}

BAD_CONFIG = {
    'default_language = "en"': 'default_language = "deutsch"',
    'address = "newsletter@example.org"': 'address = "newsletter-at-example.org"',
    'base_url = "https://news.example.org"': 'base_url = "news.example.org"',
    'backend = "outbox"': 'backend = "smpt"',
    "port = 25": 'port = "twenty-five"',
}


#: Cases also run as a real `newsletter` process (exit status, stderr, no traceback end to end);
#: the others run the same click command in-process, which is ten times faster.
REAL_PROCESS = {"malformed-yaml", "template-syntax-error", "config-bad-values", "all-problems-of-all-issues"}


def build(project: Path, issues: list[str], *, real_process: bool) -> tuple[int, str, str]:
    """Run `newsletter build ISSUES` in `project`: (exit status, stdout, stderr)."""
    if real_process:
        r = run(["build", *issues], cwd=project)
        assert "Traceback" not in r.stderr
        return r.returncode, r.stdout, r.stderr
    from click.testing import CliRunner

    from newsletter.cli import cli

    result = CliRunner().invoke(cli, ["build", *issues], catch_exceptions=True)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exc_info
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_per_problem_and_writes_nothing(project: Path, case: str) -> None:
    files, issues, expected = CASES[case]
    for name, content in files.items():
        path = project / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if callable(content):  # an edit of the example file
            content = content(path.read_text(encoding="utf-8"))
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    status, stdout, stderr = build(project, issues, real_process=case in REAL_PROCESS)
    assert status == 1, stdout + stderr
    assert stderr.splitlines() == expected
    assert stdout == ""
    out = project / "build"
    assert not out.exists() or not any(out.rglob("*")), sorted(out.rglob("*"))


def test_a_failed_rebuild_keeps_the_previous_build(project: Path) -> None:
    """A good build, then a broken edit: the earlier output stays whole and untouched."""
    issue = project / "issues" / "x.yaml"
    issue.write_text(GOOD)
    assert build(project, ["issues/x.yaml"], real_process=False)[0] == 0
    before = {p.name: p.read_bytes() for p in (project / "build" / "x").iterdir()}
    issue.write_text(GOOD.replace("body: Hi", "body: Hi\n    bdy: typo"))
    status, _, stderr = build(project, ["issues/x.yaml"], real_process=False)
    assert status == 1
    assert stderr.splitlines() == ["issues/x.yaml:6: blocks[0].bdy: unknown key 'bdy'; did you mean 'body'?"]
    assert {p.name: p.read_bytes() for p in (project / "build" / "x").iterdir()} == before
    assert sorted(p.name for p in (project / "build").iterdir()) == ["x"]
