"""CSS the clients ignore, from caniemail.com data (see newsletter/data/README.md)."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from newsletter.lint.context import Context
from newsletter.lint.findings import Finding
from newsletter.lint.mjml import DATA


@functools.lru_cache(maxsize=1)
def css_support() -> dict[str, Any]:
    """The caniemail.com subset (see newsletter/data/README.md for its source)."""
    return json.loads((DATA / "caniemail-css.json").read_text(encoding="utf-8"))


#: Not reported: hints a client may ignore with nothing lost. An @media block is not
#: reported either: a client that ignores it keeps the base design, which is its purpose;
#: declarations inside it are checked only against the clients that apply the block.
HINTS = {"css-color-scheme", "css-at-media", "css-comments", "css-important"}
_FUNCTIONS = {"linear-gradient": "css-linear-gradient", "radial-gradient": "css-radial-gradient",
              "conic-gradient": "css-conic-gradient", "calc": "css-unit-calc", "clamp": "css-function-clamp",
              "min": "css-function-min", "max": "css-function-max", "rgb": "css-rgb", "rgba": "css-rgba",
              "light-dark": "css-function-light-dark", "lch": "css-modern-color", "oklch": "css-modern-color",
              "lab": "css-modern-color", "oklab": "css-modern-color", "var": "css-variables"}
_MEDIA = {"prefers-color-scheme": "css-at-media-prefers-color-scheme", "orientation": "css-at-media-orientation",
          "hover": "css-at-media-hover", "any-hover": "css-at-media-hover",
          "prefers-reduced-motion": "css-at-media-prefers-reduced-motion",
          "-webkit-device-pixel-ratio": "css-at-media-device-pixel-ratio",
          "-webkit-min-device-pixel-ratio": "css-at-media-device-pixel-ratio"}


@functools.lru_cache(maxsize=1)
def _keyword_index() -> dict[str, str]:
    index: dict[str, str] = {}
    for slug, feat in css_support()["features"].items():
        for kw in str(feat.get("keywords") or "").split(","):
            kw = kw.strip()
            # only longhand property names (border-top, column-gap): plain words like "color" are topics
            if re.fullmatch(r"[a-z]+-[a-z-]+", kw) and f"css-{kw}" not in css_support()["features"]:
                index.setdefault(kw, slug)
    return index


def property_features(prop: str, value: str) -> set[str]:
    """caniemail features a declaration uses."""
    feats = css_support()["features"]
    prop, value = prop.strip().lower(), value.strip().lower()
    out: set[str] = set()
    if prop in ("left", "right", "top", "bottom"):
        out.add("css-left-right-top-bottom")
    elif f"css-{prop}" in feats:
        out.add(f"css-{prop}")
    elif prop in _keyword_index():
        out.add(_keyword_index()[prop])
    elif prop.split("-")[0] in ("margin", "padding", "border") and f"css-{prop.split('-')[0]}" in feats:
        out.add(f"css-{prop.split('-')[0]}")
    if prop == "display":
        kind = {"flex": "css-display-flex", "inline-flex": "css-display-flex", "grid": "css-display-grid",
                "inline-grid": "css-display-grid", "none": "css-display-none"}.get(value.replace("!important", "")
                                                                                   .strip())
        if kind:
            out.add(kind)
    for fn in re.findall(r"([a-z-]+)\(", value):
        if fn in _FUNCTIONS:
            out.add(_FUNCTIONS[fn])
    for unit in re.findall(r"\d(rem|vh|vw|vmin|vmax|ch|ex|pt|cm|mm|in|pc)\b", value):
        out.add(f"css-unit-{unit}")
    return {f for f in out if f in feats}


def selector_features(selector: str) -> set[str]:
    feats = css_support()["features"]
    out = set()
    for colons, name in re.findall(r"(::?)([a-z-]+)", selector.lower()):
        slug = f"css-pseudo-{'element' if colons == '::' or name in ('before', 'after') else 'class'}-{name}"
        if slug in feats:
            out.add(slug)
    return out


@dataclass(frozen=True)
class CssUse:
    """A feature used by the CSS we wrote, and the clients that would apply it."""

    feature: str
    needle: str  # text to look for in templates
    clients: frozenset[str]


def css_uses(mjml: str) -> list[CssUse]:
    """CSS the templates wrote: <mj-style>, <style> in <mj-raw>, and style="" on HTML inside components."""
    import cssutils

    cssutils.log.setLevel(50)
    all_clients = frozenset(css_support()["clients"])
    uses: list[CssUse] = []
    sheets = re.findall(r"<mj-style\b[^>]*>(.*?)</mj-style>", mjml, re.S)
    sheets += re.findall(r"<style\b[^>]*>(.*?)</style>", mjml, re.S)
    for sheet_text in sheets:
        sheet = cssutils.parseString(sheet_text, validate=False)
        uses.extend(_rules_uses(sheet.cssRules, all_clients))
    for style in re.findall(r"\sstyle\s*=\s*\"([^\"]*)\"", mjml) + re.findall(r"\sstyle\s*=\s*'([^']*)'", mjml):
        decl = cssutils.parseStyle(style, validate=False)
        for prop in decl:
            for feat in property_features(prop.name, prop.value):
                uses.append(CssUse(feat, prop.name, all_clients))
    return uses


def _rules_uses(rules: Any, clients: frozenset[str]) -> Iterator[CssUse]:
    support = css_support()["features"]
    for rule in rules:
        kind = rule.type
        if kind == rule.STYLE_RULE:
            for feat in selector_features(rule.selectorText):
                yield CssUse(feat, rule.selectorText.split(",")[0].strip(), clients)
            for prop in rule.style:
                for feat in property_features(prop.name, prop.value + (" !important" if prop.priority else "")):
                    yield CssUse(feat, prop.name, clients)
        elif kind == rule.MEDIA_RULE:
            media = rule.media.mediaText.lower()
            gates = {"css-at-media"} | {slug for name, slug in _MEDIA.items() if re.search(rf"\b{name}\b", media)}
            applying = frozenset(c for c in clients
                                 if not any(_status(support.get(g, {}), c) == "n" for g in gates))
            yield from _rules_uses(rule.cssRules, applying)
        elif kind == rule.FONT_FACE_RULE:
            yield CssUse("css-at-font-face", "@font-face", clients)
        elif kind == rule.IMPORT_RULE:
            yield CssUse("css-at-import", "@import", clients)
        else:
            text = (getattr(rule, "cssText", "") or "").lstrip().lower()
            for at, slug in (("@keyframes", "css-at-keyframes"), ("@supports", "css-at-supports"),
                             ("@-webkit-keyframes", "css-at-keyframes")):
                if text.startswith(at):
                    yield CssUse(slug, at, clients)


def _status(feature: dict[str, Any], client: str) -> str:
    value = feature.get("support", {}).get(client, "u@")
    return value.split("@")[0]


GMAIL = "gmail/desktop-webmail"


def _css(ctx: Context) -> Iterator[Finding]:
    """CSS we wrote that Gmail, or at least two of the five major clients, ignore.

    A gap in one client only is reported with `strict_css`: in practice that client is
    Outlook for Windows, whose Word engine drops most CSS past the basics (rounded corners,
    background images, white-space); MJML's output already carries its Outlook fallbacks,
    so such CSS is nearly always a deliberate enhancement, and reporting it on every check
    would teach editors to ignore warnings.
    """
    data = css_support()
    names = data["clients"]
    by_feature: dict[str, tuple[str, set[str]]] = {}
    for use in css_uses(ctx.built.rendered.mjml):
        if use.feature in HINTS:
            continue
        feat = data["features"][use.feature]
        missing = {c for c in use.clients if _status(feat, c) == "n"}
        if missing and (ctx.strict_css or GMAIL in missing or len(missing) >= 2):
            needle, clients = by_feature.setdefault(use.feature, (use.needle, set()))
            clients |= missing
    for slug, (needle, clients) in by_feature.items():
        feat = data["features"][slug]
        pattern = re.compile(rf"(?<![\w-]){re.escape(needle)}\s*:" if re.fullmatch(r"[a-z-]+", needle)
                             else re.escape(needle))
        hit = ctx.in_templates(pattern)
        file, line = hit or (ctx.issue_file, None)
        who = ", ".join(names[c] for c in names if c in clients)
        yield Finding(file, line, "warning",
                      f"CSS {feat['title']} is not supported by {who} (caniemail: {feat['url']})", "css")



RULES = (_css,)
