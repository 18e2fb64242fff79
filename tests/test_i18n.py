"""Languages: the built-in catalogues are complete, a project adds its own (`translations init`),
any BCP 47 tag works and falls back along the tag, right-to-left issues are laid out right to left."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from newsletter.compose import i18n
from newsletter.compose.render import default_theme
from tests.conftest import REPO, run
from tests.tomledit import edit_toml

FIXTURES = REPO / "tests" / "fixtures" / "i18n"
ARABIC = "2013-12-10-solidarity-ar"
FSI, PDI = "\u2068", "\u2069"

ISSUE = """\
subject: Hello
date: 2011-11-28
language: LANG
links:
  donate: {url: "https://example.org/donate/"}
blocks:
  - type: section
    body: Hi
    link: {url: "https://example.org/more/"}
  - type: quotes
    items:
      - {text: "Free them.", author: "Ales Bialiatski", url: "https://example.org/press/"}
list: campaigns
"""

#: Plural forms per language (CLDR; gettext's nplurals): Arabic has six, the East Slavic three.
NPLURALS = {"ar": 6, "be": 3, "de": 2, "es": 2, "fr": 2, "ru": 3}


def _messages() -> list[str | tuple[str, str]]:
    return list(i18n.theme_messages([default_theme()]))


@pytest.mark.parametrize("language", [lang for lang in i18n.BUILT_IN if lang != "en"])
def test_every_built_in_catalogue_translates_every_theme_string(language: str) -> None:
    """A theme string without a translation in a built-in language fails here, naming it."""
    messages = _messages()
    assert len(messages) >= 25 and "Read more" in messages and "reader" in messages
    assert i18n.missing(language, messages) == []
    (po,) = i18n.catalogue_files(language)
    catalog = i18n.read_catalogue(po)  # raises on a syntax error or a wrong %(name)s
    translated = {m.id: m.string for m in catalog if m.id}
    forms = {msgid: text if isinstance(text, tuple) else (text,) for msgid, text in translated.items()}
    assert all(all(forms[m]) and text != m for m, text in translated.items()), "an untranslated or copied string"
    assert set(translated) == set(messages), "a string no template uses any more"
    assert catalog.num_plurals == NPLURALS[language]


@pytest.mark.parametrize(("language", "expected"), [
    ("ru", {1: "1 выпуск", 3: "3 выпуска", 5: "5 выпусков", 11: "11 выпусков", 21: "21 выпуск", 22: "22 выпуска"}),
    ("be", {1: "1 выпуск", 4: "4 выпускі", 12: "12 выпускаў", 31: "31 выпуск"}),
    ("ar", {0: "لا توجد أعداد", 1: "عدد واحد", 2: "عددان", 3: "3 أعداد", 11: "11 عددًا", 100: "100 عدد"}),
    ("fr", {0: "0 numéro", 1: "1 numéro", 2: "2 numéros"}),
    ("es", {1: "1 número", 2: "2 números"}),
])
def test_plural_forms_follow_each_languages_rules(language: str, expected: dict[int, str]) -> None:
    t = i18n.translations(language)
    assert {n: t.ngettext("%(num)d issue", "%(num)d issues", n) % {"num": n} for n in expected} == expected


def test_a_theme_string_without_translation_is_found(tmp_path: Path) -> None:
    """The check above can fail: a template with a new string leaves every language short of it."""
    (tmp_path / "blocks").mkdir()
    (tmp_path / "blocks" / "extra.mjml.j2").write_text('<p>{{ _("Listen to the podcast") }}</p>\n')
    messages = list(i18n.theme_messages([tmp_path, default_theme()]))
    for language in ("fr", "de", "ar"):
        assert i18n.missing(language, messages) == ["Listen to the podcast"]


@pytest.mark.parametrize(("given", "tag"), [("pt-br", "pt-BR"), ("sr_latn", "sr-Latn"), ("EN", "en"),
                                            ("es-419", "es-419"), ("zh-Hant-TW", "zh-Hant-TW")])
def test_language_tags_are_normalised(given: str, tag: str) -> None:
    assert i18n.normalise(given) == tag


@pytest.mark.parametrize("bad", ["zz", "english", "fr--FR", "12", "", "x-klingon", "fre"])
def test_what_is_not_a_language_is_refused(bad: str) -> None:
    assert i18n.normalise(bad) is None


def test_fallback_along_the_tag_then_the_lists_default() -> None:
    assert i18n.resolve("es-MX").used == "es"
    assert i18n.resolve("es-MX").note == "no translation for es-MX: the theme's strings are in es"
    assert i18n.resolve("fr").note is None
    assert i18n.resolve("en-GB").used == "en"
    sw = i18n.resolve("sw", default="fr")
    assert sw.used == "fr" and "(the list's default)" in (sw.note or "")
    assert i18n.gettext("pt-BR", "Read more", default="de") == "Weiterlesen"
    assert i18n.gettext("be-tarask", "Read more") == "Чытаць далей"


def _build(project: Path, language: str, name: str = "x") -> tuple[str, str, str, str]:
    (project / "issues" / f"{name}.yaml").write_text(ISSUE.replace("LANG", language))
    r = run(["build", f"issues/{name}.yaml"], cwd=project)
    assert r.returncode == 0, r.stderr
    out = project / "build" / name
    return (out / "email.html").read_text(), (out / "email.txt").read_text(), (out / "web.html").read_text(), r.stdout


def test_a_regional_tag_gets_its_languages_strings_and_says_so_once(project: Path) -> None:
    html, text, _, summary = _build(project, "es-mx")
    assert '<html lang="es-MX" dir="ltr"' in html
    assert "Leer más" in html and "Donar" in html and "Read more" not in html
    assert "Leer más: https://example.org/more/" in text
    assert summary.count("no translation for es-MX: the theme's strings are in es") == 1


def test_a_language_without_catalogue_falls_back_to_the_lists_default(project: Path) -> None:
    edit_toml(project / "newsletter.toml", {"default_language": "fr"})
    html, _, _, summary = _build(project, "pt-BR")
    assert '<html lang="pt-BR"' in html and "Lire la suite" in html
    assert "no translation for pt-BR: the theme's strings are in fr (the list's default)" in summary
    r = run(["check", "issues/x.yaml"], cwd=project)
    assert "issues/x.yaml:3: warning: no translation for pt-BR" in r.stdout, r.stdout


def test_translations_init_then_fill_then_build(project: Path) -> None:
    """`translations init de` writes every theme string; filled in, the project's wording wins
    over the built-in German, in the HTML, the text part and the web version."""
    r = run(["translations", "init", "de"], cwd=project)
    assert r.returncode == 0, r.stderr
    po = project / "locale" / "de" / "LC_MESSAGES" / "messages.po"
    assert f"wrote locale/de/LC_MESSAGES/messages.po: {len(_messages())} strings, {len(_messages())} to translate" \
        in r.stdout
    text = po.read_text()
    assert len(re.findall(r'^msgid "(.+)"$', text, re.M)) == len(_messages())
    assert text.count('msgstr ""') + text.count('msgstr[0] ""') == len(_messages()) + 1
    assert 'msgid_plural "%(num)d issues"\nmsgstr[0] ""\nmsgstr[1] ""\n\n' in text  # German: two forms
    assert "#: blocks/headline.mjml.j2:" in text and "#, python-format" in text
    # fill it in: our own wording for two strings, the rest marked so we can see where it went
    own = {"Donate": "Jetzt spenden", "Read more": "Mehr dazu"}

    def fill(m: re.Match[str]) -> str:
        msgid = m.group(1).replace('\\"', '"')
        return f'msgid "{m.group(1)}"\nmsgstr "{own.get(msgid, "DE: " + msgid)}"'

    text = re.sub(r'^msgid "(.+)"\nmsgstr ""$', fill, text, flags=re.M)
    text = text.replace('msgstr[0] ""\nmsgstr[1] ""', 'msgstr[0] "%(num)d Heft"\nmsgstr[1] "%(num)d Hefte"')
    po.write_text(text)
    html, txt, web, summary = _build(project, "de")
    assert "Jetzt spenden" in html and "Mehr dazu" in html and "Spenden<" not in html
    assert "DE: Read the press release" in html
    assert "DE: If you no longer wish to receive messages from FIDH - International Federation" in html
    assert "Mehr dazu: https://example.org/more/" in txt and "Jetzt spenden: https://example.org/donate/" in txt
    assert "Mehr dazu" in web and "no translation" not in summary
    check = run(["translations", "check"], cwd=project)
    assert check.returncode == 0 and "locale/de/LC_MESSAGES/messages.po: de: all" in check.stdout

    # a second init keeps what was translated and adds nothing twice
    again = run(["translations", "init", "de"], cwd=project)
    assert f"{len(_messages())} kept from before" in again.stdout
    assert po.read_text().count('msgstr "Jetzt spenden"') == 1


def test_translations_check_lists_what_is_missing(project: Path) -> None:
    run(["translations", "init", "pt-BR"], cwd=project)
    r = run(["translations", "check", "--strict"], cwd=project)
    assert r.returncode == 1
    assert f"locale/pt-BR/LC_MESSAGES/messages.po: pt-BR: {len(_messages())} of {len(_messages())} strings " \
           "untranslated" in r.stdout
    assert "\n  Read more\n" in r.stdout
    (project / "issues" / "x.yaml").write_text(ISSUE.replace("LANG", "pt-BR"))
    check = run(["check", "issues/x.yaml"], cwd=project)
    assert re.search(r"issues/x.yaml:3: warning: \d+ of the theme's strings have no pt-BR translation and show in "
                     r"English: 'Read more'", check.stdout), check.stdout


def test_an_arabic_issue_is_right_to_left(project: Path) -> None:
    shutil.copy(FIXTURES / f"{ARABIC}.yaml", project / "issues")
    r = run(["build", f"issues/{ARABIC}.yaml"], cwd=project)
    assert r.returncode == 0, r.stderr
    html = (project / "build" / ARABIC / "email.html").read_text()
    text = (project / "build" / ARABIC / "email.txt").read_text()
    web = (project / "build" / ARABIC / "web.html").read_text()
    for doc in (html, web):
        assert re.search(r'<html lang="ar" dir="rtl"', doc)
    sections = len(re.findall(r"<mj-section\b", (project / "build" / ARABIC / "email.mjml").read_text()))
    assert sections >= 8 and html.count("direction:rtl") >= sections  # every section (and its columns)
    assert 'align="right"' in html and "text-align:right" in html
    # bars on the right, arrows and bullets pointing left
    assert "border-right:4px solid #b3001b" in html and "border-left:4px solid" not in html
    assert "\u2190" in html and "\u2192" not in html and "\u25c2" in html and "\u25b8" not in html
    assert "اقرأ المزيد" in html and "تبرّع" in html and "10 ديسمبر 2013" in html
    # a Latin name inside Arabic is isolated, in the HTML only; the text part keeps its order untouched
    assert f"{FSI}Valiantsin Stefanovic{PDI}" in html and f"من {FSI}FIDH - International" in html
    assert FSI not in text and PDI not in text and "\u2190" not in text
    assert "اقرأ المزيد: https://example.org/ar/news/2013-12-10-honorary-citizen-of-paris/" in text
    assert "-- Valiantsin Stefanovic، نائب رئيس «فياسنا»، 30 سبتمبر 2013" in text


def test_a_left_to_right_issue_is_unchanged_by_the_rtl_support(project: Path) -> None:
    html, text, _, _ = _build(project, "fr")
    assert '<html lang="fr" dir="ltr"' in html and "direction:rtl" not in html
    assert 'Lire la suite<span aria-hidden="true">\u00a0\u2192</span>' in html and FSI not in html
    assert "border-left:4px solid #b3001b" in html
