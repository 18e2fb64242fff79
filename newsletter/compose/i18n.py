"""Translations of the theme's fixed strings ("Donate", "Read more", ...), per issue language.

Catalogues are ordinary gettext `.po` files in `newsletter/locale/<lang>/LC_MESSAGES/`,
compiled in memory with Babel when first needed, so there is no build step and no `.mo`
file to forget. Unknown strings and languages fall back to English.

Babel is imported only when a catalogue or an unusual date is needed: `babel.support` and
Babel's CLDR data (a pickle per locale) cost ~30 ms of every English build, for nothing
an English issue uses (see issue 6).
"""

from __future__ import annotations

import datetime as dt
import gettext as _gettext
import io
from functools import lru_cache
from pathlib import Path

LOCALE_DIR = Path(__file__).parents[1] / "locale"
DOMAIN = "messages"


def available() -> list[str]:
    """Languages with a catalogue, English first."""
    return ["en", *sorted(p.name for p in LOCALE_DIR.iterdir() if (p / "LC_MESSAGES" / f"{DOMAIN}.po").is_file())]


@lru_cache(maxsize=16)
def translations(language: str) -> _gettext.NullTranslations:
    """gettext translations for `language` ('en' and unknown languages: identity, the
    standard library's, which has every method Jinja2's i18n extension calls)."""
    po = LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"
    if language == "en" or not po.is_file():
        return _gettext.NullTranslations()
    from babel.messages.mofile import write_mo  # only non-English issues pay for the .po parser
    from babel.messages.pofile import read_po
    from babel.support import Translations

    with po.open("rb") as f:
        catalog = read_po(f, locale=language, domain=DOMAIN)
    buf = io.BytesIO()
    write_mo(buf, catalog)
    buf.seek(0)
    return Translations(fp=buf, domain=DOMAIN)


def gettext(language: str, message: str, **params: str) -> str:
    """One fixed string in `language` (English if untranslated), with %(name)s parameters filled."""
    text = translations(language).gettext(message)
    return text % params if params else text


#: Date patterns per language (CLDR skeletons differ: en_US writes "November 28, 2011";
#: the seeds, like most international English, write "28 November 2011").
_DATE_PATTERNS = {"en": "d MMMM y", "fr": "d MMMM y"}

#: CLDR's wide month names (Babel's `format_date(d, "MMMM", locale=...)`), for the pattern
#: "d MMMM y" without loading Babel's locale data. tests/test_build.py checks them
#: against Babel for every month, so they cannot drift from what Babel would write.
MONTHS = {
    "en": ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December"),
    "fr": ("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août",
           "septembre", "octobre", "novembre", "décembre"),
}


def format_date(value: dt.date | None, language: str = "en") -> str:
    """A date as readers of `language` write it, e.g. 28 November 2011 / 28 novembre 2011."""
    if not value:
        return ""
    if _DATE_PATTERNS.get(language) == "d MMMM y" and language in MONTHS:
        return f"{value.day} {MONTHS[language][value.month - 1]} {value.year}"
    from babel.dates import format_date as babel_format_date

    return babel_format_date(value, format=_DATE_PATTERNS.get(language, "long"), locale=language)
