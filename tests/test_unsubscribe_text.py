"""A list's own unsubscribe line (`[lists.<id>] unsubscribe_text`) per language: text applies to
editions in the list's default language only, a table gives each language its own line, and any
other language keeps the theme's translated line. Built by the real command from real files."""

from __future__ import annotations

from pathlib import Path

import pytest
import tomlkit

from newsletter.compose import i18n
from tests.conftest import run
from tests.tomledit import DELETE, edit_toml, line_of

DIGEST = "2013-12-10-solidarity-with-ales-bialiatski"
ORG = "Human Rights Centre “Viasna”"
CUSTOM_EN = "You receive the Viasna digest because you asked for it. Unsubscribe here."
CUSTOM_BE = "Вы атрымліваеце дайджэст «Вясны», бо падпісаліся на яго. Адпісацца тут."
LINE = "If you no longer wish to receive messages from %(org)s, unsubscribe here."
EDITION = """\
subject: Салідарнасць з Алесем Бяляцкім
date: 2013-12-10
blocks:
  - type: section
    body: Праваабаронца Алесь Бяляцкі, {{ name }}.
"""


def _edition(project: Path, lang: str) -> None:
    (project / "issues" / f"{DIGEST}.{lang}.yaml").write_text(EDITION, encoding="utf-8")


def _set_text(project: Path, value: str) -> int:
    """Set the digest's unsubscribe_text to `value`, written as this TOML (an inline table stays
    inline); returns its line in newsletter.toml."""
    toml = project / "newsletter.toml"
    edit_toml(toml, {"lists.digest.unsubscribe_text": tomlkit.value(value)})
    return line_of(toml, "unsubscribe_text = ", after="[lists.digest]")


def _built(project: Path, lang: str | None = None) -> tuple[str, str]:
    folder = project / "build" / DIGEST / (lang or "")
    return (folder / "email.txt").read_text(encoding="utf-8"), (folder / "email.html").read_text(encoding="utf-8")


def _translated(lang: str) -> str:
    """The theme's own line in `lang`, from the package's catalogue."""
    line = i18n.gettext(lang, LINE, org=ORG)
    assert line != LINE.replace("%(org)s", ORG) or lang == "en"  # really translated: the test can tell them apart
    return line


def test_a_text_is_the_default_languages_line_only(project: Path) -> None:
    """The example's digest: its English wording in the English issue, Belarusian's own line in
    the Belarusian edition (before: the English wording in every edition)."""
    _edition(project, "be")
    r = run(["build", f"issues/{DIGEST}.yaml"], cwd=project)
    assert r.returncode == 0, r.stderr
    text, html = _built(project)
    assert CUSTOM_EN in text and CUSTOM_EN in html
    be_text, be_html = _built(project, "be")
    assert _translated("be") in be_text
    assert "Калі вы больш не хочаце атрымліваць лісты ад" in be_html
    assert CUSTOM_EN not in be_text and CUSTOM_EN not in be_html


def test_a_table_gives_each_language_its_line_and_the_others_the_translation(project: Path) -> None:
    _set_text(project, f'{{ en = "{CUSTOM_EN}", be = "{CUSTOM_BE}" }}')
    for lang in ("be", "fr"):
        _edition(project, lang)
    r = run(["build", f"issues/{DIGEST}.yaml"], cwd=project)
    assert r.returncode == 0, r.stderr
    assert CUSTOM_EN in _built(project)[0]
    be_text, be_html = _built(project, "be")
    assert CUSTOM_BE in be_text and CUSTOM_BE in be_html and CUSTOM_EN not in be_text
    fr_text, fr_html = _built(project, "fr")  # not in the table: the theme's French line
    assert _translated("fr") in fr_text and CUSTOM_EN not in fr_text and CUSTOM_BE not in fr_text
    assert "Si vous ne souhaitez plus recevoir de messages de" in fr_html


def test_a_table_written_as_a_sub_table_and_a_regional_edition(project: Path) -> None:
    """`[lists.digest.unsubscribe_text]` on its own lines; `be` covers a `be-BY` edition (a tag's
    shorter form, as the theme's catalogues do); a table without `en` leaves English translated."""
    toml = project / "newsletter.toml"
    edit_toml(toml, {"lists.digest.unsubscribe_text": DELETE})
    edit_toml(toml, {"lists.digest.unsubscribe_text": {"be": CUSTOM_BE}})  # a dict: a [table] of its own
    assert "\n[lists.digest.unsubscribe_text]\n" in toml.read_text(encoding="utf-8")
    _edition(project, "be-BY")
    r = run(["build", f"issues/{DIGEST}.yaml"], cwd=project)
    assert r.returncode == 0, r.stderr
    assert CUSTOM_BE in _built(project, "be-BY")[0]
    english = _built(project)[0]
    assert _translated("en") in english and CUSTOM_BE not in english


def test_the_issues_own_footer_text_still_wins(project: Path) -> None:
    _set_text(project, f'{{ en = "{CUSTOM_EN}", be = "{CUSTOM_BE}" }}')
    (project / "issues" / f"{DIGEST}.be.yaml").write_text(
        EDITION + "footer: {unsubscribe_text: Толькі для гэтага выпуску}\n", encoding="utf-8")
    r = run(["build", f"issues/{DIGEST}.yaml"], cwd=project)
    assert r.returncode == 0, r.stderr
    be_text = _built(project, "be")[0]
    assert "Толькі для гэтага выпуску" in be_text and CUSTOM_BE not in be_text


@pytest.mark.parametrize(("value", "field", "message"), [
    ("42", "", "must be text, or a table of language = text ({ en = \"...\", be = \"...\" }), got a number (42)"),
    ("true", "", "must be text, or a table of language = text ({ en = \"...\", be = \"...\" }), got true/false"),
    ('["Unsubscribe"]', "", "must be text, or a table of language = text ({ en = \"...\", be = \"...\" }), "
                            "got a list"),
    ("{}", "", "an empty table: name at least one language (en = \"...\"), or leave it out"),
    ('{ english = "Leave" }', ".english",
     "'english' is not a language tag (BCP 47, e.g. en, fr, pt-BR, sr-Latn)"),
    ('{ zz = "Leave" }', ".zz", "'zz' is not a language tag (BCP 47, e.g. en, fr, pt-BR, sr-Latn)"),
    ('{ en = 5 }', ".en", "must be text, got a number (5)"),
    ('{ en = "" }', ".en", "must not be empty"),
    ('{ en = "Leave", EN = "Go" }', ".EN", "en is already in this table"),
])
def test_a_bad_value_is_one_line_naming_the_field(project: Path, value: str, field: str, message: str) -> None:
    line = _set_text(project, value)
    r = run(["build", f"issues/{DIGEST}.yaml"], cwd=project)
    assert r.returncode == 1
    assert r.stderr.strip() == f"newsletter.toml:{line}: lists.digest.unsubscribe_text{field}: {message}"
    assert r.stdout == "" and not (project / "build").exists()


def test_a_bad_key_of_a_sub_table_names_its_own_line(project: Path) -> None:
    toml = project / "newsletter.toml"
    edit_toml(toml, {"lists.digest.unsubscribe_text": DELETE})
    edit_toml(toml, {"lists.digest.unsubscribe_text": {"en": CUSTOM_EN, "be_XX_1": "x"}})
    line = line_of(toml, "be_XX_1 = ", after="[lists.digest.unsubscribe_text]")
    r = run(["check", f"issues/{DIGEST}.yaml"], cwd=project)
    assert r.returncode == 1
    assert r.stderr.strip() == (f"newsletter.toml:{line}: lists.digest.unsubscribe_text.be_XX_1: 'be_XX_1' is not "
                                "a language tag (BCP 47, e.g. en, fr, pt-BR, sr-Latn)")
    assert "Traceback" not in r.stderr
