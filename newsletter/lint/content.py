"""Rules about what the message carries: size (Gmail's clip), subject, preheader, images,
the unsubscribe link and headers, the postal address."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from newsletter.compose.build import GMAIL_CLIP_BYTES, SAMPLE_RECIPIENT, Built
from newsletter.deliver.constants import ONE_CLICK
from newsletter.deliver.placeholders import PLACEHOLDER, Template
from newsletter.lint.context import Context
from newsletter.lint.findings import Finding

WARN_BYTES = 90 * 1024
SUBJECT_MAX = 80


def _size(ctx: Context) -> Iterator[Finding]:
    size = ctx.built.sample_html_bytes()
    kb = size / 1024
    if size > GMAIL_CLIP_BYTES:
        yield Finding(ctx.issue_file, None, "error",
                      f"email.html is {kb:.1f} KB with a recipient filled in: Gmail clips messages over 102 KB "
                      "and hides the rest, the unsubscribe link included", "size")
    elif size > WARN_BYTES:
        yield Finding(ctx.issue_file, None, "warning",
                      f"email.html is {kb:.1f} KB with a recipient filled in: close to Gmail's 102 KB clipping "
                      "limit", "size")


def _subject(ctx: Context) -> Iterator[Finding]:
    subject = ctx.built.issue.subject
    line = ctx.key_line("subject")
    # A reader without a name (a real CSV row can have none) gets the emptiest subject.
    if not Template(subject).fill({}).strip():
        yield Finding(ctx.issue_file, line, "error",
                      "subject is empty once per-recipient fields are filled in for a reader without them", "subject")
        return
    filled = Template(subject).fill(SAMPLE_RECIPIENT)
    if len(filled) > SUBJECT_MAX:
        yield Finding(ctx.issue_file, line, "warning",
                      f"subject is {len(filled)} characters with a recipient filled in: inboxes cut it off around "
                      f"{SUBJECT_MAX}", "subject")


def _preheader(ctx: Context) -> Iterator[Finding]:
    if not ctx.built.issue.preheader:
        yield Finding(ctx.issue_file, None, "warning",
                      "no preheader: inboxes show the first text of the email beside the subject instead",
                      "preheader")


def _images(ctx: Context) -> Iterator[Finding]:
    for img in ctx.doc.iter("img"):
        src = (img.get("src") or "").strip()
        if _is_tracking_pixel(img):
            continue
        if not (img.get("alt") or "").strip():
            file, line = ctx.locate(src) if src else (ctx.issue_file, None)
            yield Finding(file, line, "error",
                          f"image without alt text: {src or '(no src)'}: readers with images off (and screen "
                          "readers) get nothing", "img-alt")
        width = (img.get("width") or "").strip()
        if not width.isdigit():  # missing, or MJML's width="100%" for an image given no size
            file, line = ctx.locate(src) if src else (ctx.issue_file, None)
            given = f' (width="{width}")' if width else ""
            yield Finding(file, line, "warning",
                          f"image without a width in pixels{given}: {src or '(no src)'}: Outlook desktop shows it "
                          "at its full natural size, and with images off no box of its size holds its place; "
                          "give the image a width (and height)", "img-width")
    yield from _unsized_images(ctx)


def _unsized_images(ctx: Context) -> Iterator[Finding]:
    """Images of the issue given neither width nor height: the theme can only guess their box."""
    def walk(node: Any) -> Iterator[Any]:
        if isinstance(node, dict):
            if "src" in node and "alt" in node:
                yield node
            for value in node.values():
                yield from walk(value)
        elif isinstance(node, list):
            for value in node:
                yield from walk(value)

    for image in walk(ctx.issue_data):
        if image.get("width") is None and image.get("height") is None:
            yield Finding(ctx.issue_file, getattr(image, "line", None), "warning",
                          f"image with neither width nor height: {image.get('src') or '(no src)'}: the theme "
                          "can only guess its box (content width), so a smaller image is stretched, and with "
                          "images off (Outlook desktop's default) no box of its height keeps its place; give its "
                          "width and height in pixels", "img-width")


def _is_tracking_pixel(img: Any) -> bool:
    return img.get("width") == "1" and img.get("height") == "1"



def _unsubscribe(ctx: Context) -> Iterator[Finding]:
    r = ctx.built.rendered
    field_ = "unsubscribe_url"
    hrefs = [a.get("href") or "" for a in ctx.doc.iter("a")]
    if not any(field_ in PLACEHOLDER.findall(h) for h in hrefs):
        yield Finding(ctx.issue_file, None, "error",
                      "no unsubscribe link in the HTML part (a link to {{ unsubscribe_url }}): every message must "
                      "let its reader leave the list", "unsubscribe")
    if field_ not in PLACEHOLDER.findall(r.text):
        yield Finding(ctx.issue_file, None, "error",
                      "no unsubscribe link in the text part ({{ unsubscribe_url }})", "unsubscribe")
    headers = _sample_headers(ctx.built)
    if headers is not None:
        if not headers.get("List-Unsubscribe"):
            yield Finding(ctx.issue_file, None, "error",
                          "the built message has no List-Unsubscribe header: inboxes show no unsubscribe button",
                          "unsubscribe")
        if (headers.get("List-Unsubscribe-Post") or "").strip() != ONE_CLICK:
            yield Finding(ctx.issue_file, None, "error",
                          "the built message has no List-Unsubscribe-Post: List-Unsubscribe=One-Click header "
                          "(RFC 8058): Gmail and Yahoo require one-click unsubscribe from bulk senders",
                          "unsubscribe")
    base = ctx.built.config.base_url
    if urlsplit(base).scheme != "https":
        yield Finding(ctx.config_file, ctx.config_line("site.base_url"), "error",
                      f"site.base_url {base} is not https: the List-Unsubscribe header's one-click link (RFC 8058) "
                      "must be https://", "unsubscribe")


def _sample_headers(built: Built) -> Any:
    """The headers of one message exactly as `send` would build it, for a sample reader.

    Signed with the development key, never the environment's: checking stays pure and
    needs no secret. None if the message module cannot build one (then only the links
    are checked).
    """
    import email
    import email.policy

    try:
        from newsletter.audience.secrets import DEVELOPMENT_KEY, SigningKeys
        from newsletter.deliver.message import make_recipient, prepare_message

        keys = SigningKeys(DEVELOPMENT_KEY.encode(), (), True)
        language = built.language
        reader = make_recipient(email=SAMPLE_RECIPIENT["email"], name=SAMPLE_RECIPIENT["name"], language=language,
                                fields={}, slug=built.slug, config=built.config, keys=keys)
        raw = prepare_message(built).to_bytes(reader)
    except (ImportError, TypeError, AttributeError, ValueError):
        return None
    return email.message_from_bytes(raw.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n", policy=email.policy.default)


def _postal_address(ctx: Context) -> Iterator[Finding]:
    from newsletter.editor.scaffold import PLACEHOLDER_ADDRESS

    address = ctx.built.config.org_postal_address
    if address == PLACEHOLDER_ADDRESS:
        yield Finding(ctx.config_file, ctx.config_line("organisation.postal_address"),
                      "warning" if ctx.demo else "error",
                      "organisation.postal_address is still the placeholder `newsletter init` wrote: readers must "
                      "see your real postal address", "postal-address")
    parts = [_norm(p) for p in re.split(r"[\n]", address) if p.strip()]
    body = ctx.doc.find("body")
    html_text = _norm(body.text_content() if body is not None else "")
    text = _norm(ctx.built.rendered.text)
    for name, where in (("HTML", html_text), ("text", text)):
        if not all(p in where for p in parts):
            yield Finding(ctx.issue_file, None, "error",
                          f"the postal address ({address.splitlines()[0]}…) is not in the {name} part: the law "
                          "(CAN-SPAM, and most countries') requires it in every newsletter", "postal-address")


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().casefold()


RULES = (_size, _subject, _preheader, _images, _unsubscribe, _postal_address)
