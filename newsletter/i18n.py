"""Translations of the theme's fixed strings ("Donate", "Read more", ...), per issue language.

Catalogues are ordinary gettext `.po` files in `newsletter/locale/<lang>/LC_MESSAGES/`,
compiled in memory with Babel when first needed, so there is no build step and no `.mo`
file to forget. Unknown strings and languages fall back to English.
"""

from __future__ import annotations

import io
from functools import lru_cache
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

LOCALE_DIR = Path(__file__).parent / "locale"
DOMAIN = "messages"


def available() -> list[str]:
    return ["en", *sorted(p.name for p in LOCALE_DIR.iterdir() if (p / "LC_MESSAGES" / f"{DOMAIN}.po").is_file())]


@lru_cache(maxsize=16)
def translations(language: str) -> NullTranslations:
    """gettext translations for `language` ('en' and unknown languages: identity)."""
    po = LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"
    if language == "en" or not po.is_file():
        return NullTranslations()
    with po.open("rb") as f:
        catalog = read_po(f, locale=language, domain=DOMAIN)
    buf = io.BytesIO()
    write_mo(buf, catalog)
    buf.seek(0)
    return Translations(fp=buf, domain=DOMAIN)


def gettext(language: str, message: str, **params: str) -> str:
    text = translations(language).gettext(message)
    return text % params if params else text
