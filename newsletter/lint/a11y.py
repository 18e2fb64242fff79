"""Accessibility rules: alt text that is a file name rather than a description, and theme
colour pairs that fail WCAG AA contrast (4.5:1 for text)."""

from __future__ import annotations

import re
from collections.abc import Iterator

from newsletter.config import contrast
from newsletter.lint.context import Context
from newsletter.lint.findings import Finding

AA = 4.5

_EXTENSION = re.compile(r"\.(?:jpe?g|png|gif|webp|svg|heic|tiff?|bmp)\b", re.I)
_CAMERA = re.compile(r"(?:^|[\s_-])_?(?:IMG|DSC|DSCN|MG|PXL|DCIM|GOPR|P)[_-]?\d{3,}", re.I)
_GLUED = re.compile(r"[A-Za-z]+[-_&][A-Za-z]+")


def looks_like_file_name(alt: str) -> bool:
    """True for alt text such as "Ales Bialiatski _MG_0633", "Ales-cake-Hague", "IMG_1234.jpg" or
    "mayor of paris&son": what a CMS fills in from the file name. Screen readers read it out
    letter by letter; readers with images off learn nothing."""
    text = alt.strip()
    if not text:
        return False
    if _EXTENSION.search(text) or _CAMERA.search(text):
        return True
    if " " not in text and re.search(r"[-_.]", text):
        return True
    if re.search(r"\w&\w", text):
        return True
    return text == text.lower() and bool(_GLUED.search(text))


def _alt_file_names(ctx: Context) -> Iterator[Finding]:
    seen: set[str] = set()
    alts = [img.get("alt") or "" for img in ctx.doc.iter("img")]
    alts += [el.get("aria-label") or "" for el in ctx.doc.iterfind(".//*[@role='img']")]
    for alt in alts:
        alt = alt.split(": ", 1)[1] if alt.count(": ") == 1 and alt.startswith(("Watch", "Regarder")) else alt
        if alt in seen or not looks_like_file_name(alt):
            continue
        seen.add(alt)
        file, line = ctx.locate(alt)
        yield Finding(file, line, "warning",
                      f"alt text {alt!r} looks like a file name: describe what the picture shows "
                      "(screen readers read it out, and readers with images off see only it)", "img-alt-filename")


def _theme_contrast(ctx: Context) -> Iterator[Finding]:
    theme = ctx.built.config.theme
    pairs = [
        ("primary", "#ffffff", theme.primary, "white text on the primary colour (masthead, buttons)"),
        ("accent", theme.accent, "#ffffff", "the accent colour on white (links, kickers, outlined buttons)"),
        ("text", theme.text, "#ffffff", "the text colour on white"),
    ]
    for key, fg, bg, what in pairs:
        ratio = contrast(fg, bg)
        if ratio < AA:
            yield Finding(ctx.config_file, ctx.config_line(f"theme.{key}"), "warning",
                          f"theme.{key}: {what} has a contrast of {ratio:.1f}:1; WCAG AA asks at least {AA}:1 "
                          f"for text ({fg} on {bg})", "contrast")


RULES = (_alt_file_names, _theme_contrast)
